# rule skill_data: generate one skill's train / eval / probe JSONL.
from pathlib import Path

from simmerge.catalog.skills import write_skill_data
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    write_skill_data(snakemake.wildcards.task, Path(snakemake.output.train).parent, **snakemake.params.spec)
