# rule weight_sketch: the sketch of one checkpoint's task vector against the base.
from simmerge.catalog.build import checkpoint_dir
from simmerge.core.logs import log_to
from simmerge.features.probe_pass import sketch_checkpoint

with log_to(snakemake.log[0]):
    sketch_checkpoint(
        checkpoint_dir(snakemake.input.manifest),
        checkpoint_dir(snakemake.input.base),
        snakemake.output[0],
        name=snakemake.wildcards.model,
        spec=snakemake.params.features,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
