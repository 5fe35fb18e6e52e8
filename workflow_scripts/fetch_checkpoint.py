# rule fetch_checkpoint: download a pinned Hugging Face revision.
from pathlib import Path

from simmerge.catalog.build import fetch_hf_checkpoint
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    fetch_hf_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.source,
        Path(snakemake.output[0]).parent,
        base_manifest=snakemake.input.get("base"),
    )
