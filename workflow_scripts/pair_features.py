# rule pair_features: the feature row of one ordered expert pair on every task.
from simmerge.features import pair_features
from simmerge.io import write_table
from simmerge.logs import log_to

with log_to(snakemake.log[0]):
    table = pair_features(
        snakemake.input.a, snakemake.input.b, snakemake.input.base, top_fraction=snakemake.params.top_fraction
    )
    write_table(table, snakemake.output[0])
