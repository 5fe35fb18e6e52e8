# rule search: every configured selection method on the held-out checkpoint folds (simmerge.evaluate.methods), and
# the CMA-ES searches of rule cma_search on the same pairs' held-out items.
import pandas as pd

from simmerge.core.io import read_json, write_table
from simmerge.core.logs import log_to
from simmerge.core.runtime import native_threads
from simmerge.evaluate.methods import compare_methods, method_entries
from simmerge.features.definitions import feature_names

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    spec = snakemake.params.search
    units, summary = compare_methods(
        pd.read_parquet(snakemake.input.labels),
        pd.read_parquet(snakemake.input.outcomes),
        method_entries(spec["methods"]),
        feature_names(),
        spec["operators"],
        families=spec["families"],
        checkpoint_groups=spec["checkpoint_groups"],
        seed=spec["seed"],
        n_boot=spec["bootstrap"],
        search_records=[{**read_json(path), "path": path} for path in snakemake.input.cma],
    )
    write_table(units, snakemake.output.units)
    write_table(summary, snakemake.output.summary)
