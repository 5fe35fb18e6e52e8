# rule report: results/<run>/report.html, self-contained.
from importlib import metadata

import pandas as pd

from simmerge.core.io import read_json, write_text
from simmerge.core.layout import RunLayout
from simmerge.core.logs import log_to
from simmerge.evaluate.costs import decision_costs
from simmerge.evaluate.predictor import load_predictor, training_rows
from simmerge.features.definitions import feature_names
from simmerge.report.html import build_report, feature_importances
from simmerge.report.provenance import read_provenance

with log_to(snakemake.log[0]):
    spec = snakemake.params.report
    labels = pd.read_parquet(snakemake.input.labels)
    operators = [op["name"] for op in spec["operators"]]
    predictor = load_predictor(snakemake.input.model, feature_columns=feature_names(), operators=operators)
    versions = {
        name: metadata.version(name)
        for name in ("torch", "transformers", "mergekit", "lm_eval", "snakemake", "scikit-learn")
    }
    facts = {**spec["facts"], "versions": ", ".join(f"{k} {v}" for k, v in versions.items())}
    text = build_report(
        title=spec["title"],
        run_facts=facts,
        expert_scores=pd.read_csv(snakemake.input.experts),
        operators=spec["operators"],
        labels=labels,
        tie_z=spec["tie_z"],
        summaries=[read_json(path) for path in snakemake.input.summaries],
        units=pd.read_csv(snakemake.input.units),
        candidates=pd.read_csv(snakemake.input.candidates),
        cv=read_json(snakemake.input.cv),
        importances=feature_importances(predictor, training_rows(labels), seed=spec["seed"]),
        costs=decision_costs(RunLayout(spec["run_dir"]), spec["experts"], spec["tasks"], snakemake.input.merges),
        multiway=pd.read_csv(snakemake.input.multiway[0]) if snakemake.input.multiway else None,
        bandit=pd.read_csv(snakemake.input.bandit),
        arrivals=spec["arrivals"],
        provenance=read_provenance(spec["run_dir"], [*snakemake.input.provenance, *snakemake.input.merges]),
    )
    write_text(text, snakemake.output[0])
