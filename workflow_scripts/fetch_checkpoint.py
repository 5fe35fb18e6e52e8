# rule fetch_checkpoint: copy a locked Hugging Face commit out of the hub cache (filled by rule prefetch), offline.
from pathlib import Path

from simmerge.catalog.build import fetch_hf_checkpoint
from simmerge.core.logs import log_to
from simmerge.core.runtime import offline_hub

with log_to(snakemake.log[0]), offline_hub():
    fetch_hf_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.source,
        Path(snakemake.output[0]).parent,
        base_manifest=snakemake.input.get("base"),
    )
