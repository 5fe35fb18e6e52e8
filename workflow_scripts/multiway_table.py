# rule multiway_table: the comparison of every candidate set in one table.
import pandas as pd

from simmerge.core.io import write_table
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
    write_table(table[["set", *[c for c in table.columns if c != "set"]]], snakemake.output[0])
