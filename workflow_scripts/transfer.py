# rule transfer: a finished run's predictor, unchanged, on this run's pairs (simmerge.evaluate.transfer).

import pandas as pd

from simmerge.core.io import write_json, write_table
from simmerge.core.logs import log_to
from simmerge.core.runtime import native_threads
from simmerge.evaluate.transfer import source_predictor, transfer
from simmerge.features.scale import transfer_inputs

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    params = snakemake.params.transfer
    source_labels, target_labels, columns = transfer_inputs(
        pd.read_parquet(snakemake.input.source_labels), pd.read_parquet(snakemake.input.labels), params["features"]
    )
    predictor = source_predictor(
        snakemake.input.model,
        snakemake.input.cv,
        source_labels,
        None if params["features"] == "all" else columns,
        seed=params["seed"],
    )
    units, summary = transfer(
        predictor,
        source_labels,
        target_labels,
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
