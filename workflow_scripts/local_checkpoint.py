# rule local_checkpoint: validate and record an existing Hugging Face directory.
from simmerge.catalog.build import local_checkpoint
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    local_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.source,
        snakemake.output[0],
        workdir=snakemake.scriptdir + "/..",
        base_manifest=snakemake.input.get("base"),
    )
