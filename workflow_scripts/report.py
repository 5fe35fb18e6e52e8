# rule report: results/<run>/report.html, self-contained.
from importlib import metadata

import pandas as pd

from simmerge.core.io import read_json, write_text
from simmerge.core.layout import RunLayout
from simmerge.core.logs import log_to
from simmerge.evaluate.costs import break_even, decision_costs, merge_costs, method_budgets, unit_prices
from simmerge.report.html import build_report
from simmerge.report.provenance import read_provenance

with log_to(snakemake.log[0]):
    spec = snakemake.params.report
    labels = pd.read_parquet(snakemake.input.labels)
    versions = {
        name: metadata.version(name)
        for name in ("torch", "transformers", "mergekit", "lm_eval", "snakemake", "scikit-learn")
    }
    facts = {**spec["facts"], "versions": ", ".join(f"{k} {v}" for k, v in versions.items())}
    run = (RunLayout(spec["run_dir"]), spec["base"], spec["experts"], spec["tasks"], snakemake.input.merges)
    costs = decision_costs(*run, snakemake.input.units)
    methods = pd.read_csv(snakemake.input.search_summary)
    prices = unit_prices(merge_costs(RunLayout(spec["run_dir"]), snakemake.input.merges))
    text = build_report(
        title=spec["title"],
        run_facts=facts,
        expert_scores=pd.read_csv(snakemake.input.experts),
        operators=spec["operators"],
        labels=labels,
        label_items=pd.read_parquet(snakemake.input.outcomes),
        tie_z=spec["tie_z"],
        summaries=[read_json(path) for path in snakemake.input.summaries],
        units=pd.read_csv(snakemake.input.units),
        candidates=pd.read_csv(snakemake.input.candidates),
        cv=read_json(snakemake.input.cv),
        importances=pd.read_csv(snakemake.input.importances),
        costs=costs,
        break_even=break_even(*run, costs),
        multiway=pd.read_csv(snakemake.input.multiway[0]) if snakemake.input.multiway else None,
        bandit=pd.read_csv(snakemake.input.bandit),
        arrivals=spec["arrivals"],
        provenance=read_provenance(spec["run_dir"], [*snakemake.input.provenance, *snakemake.input.merges]),
        methods=methods,
        budgets=method_budgets(methods, costs, prices),
        transfers=[read_json(path) for path in snakemake.input.transfers],
    )
    write_text(text, snakemake.output[0])
