# rule compare: one cross-validation protocol of SimMerge against fixed policies, the oracle and random choice.
import pandas as pd

from simmerge.core.io import write_json, write_table
from simmerge.core.logs import log_to
from simmerge.core.provenance import provenance
from simmerge.core.runtime import native_threads
from simmerge.evaluate.compare import compare
from simmerge.features.definitions import feature_names

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    spec = snakemake.params.compare
    units, candidates, folds, summary, importances = compare(
        pd.read_parquet(snakemake.input.labels),
        feature_names(),
        spec["operators"],
        protocol=snakemake.wildcards.protocol,
        seed=spec["seed"],
        z=spec["z"],
        families=spec["families"],
        n_boot=spec["bootstrap"],
        checkpoint_groups=spec["checkpoint_groups"],
        importance_repeats=spec["importance_repeats"],
        items=pd.read_parquet(snakemake.input.outcomes),
        target=spec["target"],
    )
    write_table(units, snakemake.output.units)
    write_table(candidates, snakemake.output.candidates)
    write_table(folds, snakemake.output.folds)
    write_table(importances, snakemake.output.importances)
    write_json({**summary, "provenance": provenance()}, snakemake.output.summary)
