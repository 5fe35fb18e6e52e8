# rule preflight: the gate every scoring, training and merging job waits for (all cheap checks passed).
from simmerge.catalog.build import preflight_passed
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    preflight_passed(
        snakemake.input.manifests,
        snakemake.input.tasks,
        snakemake.output[0],
        unchecked=snakemake.params.unchecked,
    )
