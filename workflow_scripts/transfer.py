# rule transfer: a finished run's predictor, unchanged, on this run's pairs (simmerge.evaluate.transfer).
import json

import pandas as pd

from simmerge.core.io import write_json, write_table
from simmerge.core.logs import log_to
from simmerge.core.runtime import native_threads
from simmerge.evaluate.predictor import load_predictor
from simmerge.evaluate.transfer import refit_predictor, transfer
from simmerge.features.scale import feature_set

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    params = snakemake.params.transfer
    source_labels = pd.read_parquet(snakemake.input.source_labels)
    if params["features"] == "all":
        predictor = load_predictor(snakemake.input.model)
    else:
        with open(snakemake.input.cv, encoding="utf-8") as handle:
            family = json.load(handle)["family"]
        predictor = refit_predictor(source_labels, feature_set(params["features"]), family=family, seed=params["seed"])
    units, summary = transfer(
        predictor,
        source_labels,
        pd.read_parquet(snakemake.input.labels),
        target_items=pd.read_parquet(snakemake.input.outcomes),
        z=params["z"],
        n_boot=params["bootstrap"],
        seed=params["seed"],
    )
    write_table(units, snakemake.output.units)
    write_json(
        {"source_run": snakemake.wildcards.source, "features": params["features"], **summary},
        snakemake.output.summary,
    )
