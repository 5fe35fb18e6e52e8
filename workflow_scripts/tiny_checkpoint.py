# rule tiny_checkpoint: the seeded tiny Llama of the smoke catalog.
from pathlib import Path

from simmerge.catalog.build import tiny_checkpoint
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    tiny_checkpoint(
        snakemake.wildcards.model,
        snakemake.params.spec["source"],
        Path(snakemake.output[0]).parent,
        seed=snakemake.params.spec["seed"],
        train_files=snakemake.input.train,
        threads=snakemake.threads,
    )
