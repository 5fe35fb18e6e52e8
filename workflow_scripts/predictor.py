# rule predictor: choose the model family by leave-one-checkpoint-out CV, fit it on every label, save with skops.
import pandas as pd

from simmerge.core.io import write_json
from simmerge.core.logs import log_to
from simmerge.core.provenance import provenance
from simmerge.core.runtime import native_threads
from simmerge.evaluate.labels import retarget
from simmerge.evaluate.predictor import choose_family, fit_predictor, library_versions, save_predictor, training_rows
from simmerge.features.definitions import feature_names

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    spec = snakemake.params.predictor
    features = feature_names()
    labels, _ = retarget(
        pd.read_parquet(snakemake.input.labels), pd.read_parquet(snakemake.input.outcomes), spec["target"]
    )
    rows = training_rows(labels)
    family, families = choose_family(
        rows,
        features,
        spec["operators"],
        seed=spec["seed"],
        families=spec["families"],
        checkpoint_groups=spec["checkpoint_groups"],
    )
    predictor = fit_predictor(rows, features, spec["operators"], family=family, seed=spec["seed"])
    save_predictor(predictor, snakemake.output.model)
    write_json(
        {
            "family": family,
            "protocol": "checkpoint",
            "target": spec["target"],
            "checkpoint_groups": spec["checkpoint_groups"],
            "families": families.to_dict("records"),
            "rows": len(rows),
            "features": features,
            "operators": spec["operators"],
            "versions": library_versions(),
            "provenance": provenance(),
        },
        snakemake.output.cv,
    )
