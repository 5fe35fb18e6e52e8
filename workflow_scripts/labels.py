# rule labels: (a, b, task, operator) -> pair features + normalised merged score.
from simmerge.dataset import labels_table
from simmerge.io import write_table
from simmerge.logs import log_to

with log_to(snakemake.log[0]):
    table = labels_table(snakemake.input.features, snakemake.input.merges, snakemake.params.grid)
    write_table(table, snakemake.output.parquet)
    write_table(table, snakemake.output.csv)
