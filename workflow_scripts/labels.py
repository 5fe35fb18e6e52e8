# rule labels: (a, b, task, operator) -> pair features + normalised merged score.
from simmerge.core.io import write_table
from simmerge.core.logs import log_to
from simmerge.evaluate.labels import labels_table

with log_to(snakemake.log[0]):
    table, items = labels_table(
        snakemake.input.features, snakemake.input.merges, snakemake.params.grid, snakemake.input.parent_items
    )
    write_table(items, snakemake.output.outcomes)
    write_table(table, snakemake.output.parquet)
    write_table(table, snakemake.output.csv)
