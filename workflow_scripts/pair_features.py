# rule pair_features: the feature row of one ordered expert pair on every task.
from simmerge.core.io import write_table
from simmerge.core.logs import log_to
from simmerge.core.provenance import provenance
from simmerge.features.pairs import pair_features

with log_to(snakemake.log[0]):
    table = pair_features(
        snakemake.input.a, snakemake.input.b, snakemake.input.base, top_fraction=snakemake.params.top_fraction
    )
    write_table(table, snakemake.output[0], record={"provenance": provenance()})
