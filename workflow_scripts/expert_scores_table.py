# rule expert_scores_table: checkpoint x task table of the primary metric, with the base for reference.
from simmerge.core.io import write_text
from simmerge.core.logs import log_to
from simmerge.merges.tables import expert_table, markdown_table

with log_to(snakemake.log[0]):
    table = expert_table(snakemake.input, snakemake.params.home_tasks)
    write_text(table.to_csv(index=False), snakemake.output.csv)
    write_text(markdown_table(table), snakemake.output.markdown)
