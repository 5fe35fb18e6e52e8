# rule convert_gguf: dequantize a GGUF base into an fp32 safetensors checkpoint.
from pathlib import Path

from simmerge.catalog.build import convert_gguf_checkpoint
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    convert_gguf_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.source,
        Path(snakemake.output[0]).parent,
        workdir=snakemake.scriptdir + "/..",
    )
