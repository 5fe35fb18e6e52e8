# rule finetune_expert: full fine-tune of the parent checkpoint on the expert's home tasks.
from pathlib import Path

from simmerge.catalog.build import finetune_checkpoint
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    finetune_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.train,
        Path(snakemake.output[0]).parent,
        parent_manifest=snakemake.input.parent,
        base_manifest=snakemake.input.base,
        train_files=snakemake.input.train,
        threads=snakemake.threads,
    )
