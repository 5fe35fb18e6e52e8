# rule search: successive halving and SimMerge + k against SimMerge, budgets counted (simmerge.evaluate.search).
import pandas as pd

from simmerge.core.io import write_table
from simmerge.core.logs import log_to
from simmerge.evaluate.search import run_search

with log_to(snakemake.log[0]):
    results, summary = run_search(
        pd.read_parquet(snakemake.input.labels),
        pd.read_parquet(snakemake.input.outcomes),
        pd.read_csv(snakemake.input.candidates, keep_default_na=False, na_values=[""]),
        seed=snakemake.params.seed,
    )
    write_table(results, snakemake.output.units)
    write_table(summary, snakemake.output.summary)
