# rule task_data: draw an lm-eval task's scored documents, probes and training rows (simmerge.catalog.harness).
from pathlib import Path

from simmerge.catalog.build import checkpoint_dir
from simmerge.catalog.harness import write_harness_task_data
from simmerge.core.config import parse_task_spec
from simmerge.core.logs import log_to
from simmerge.core.runtime import offline_hub

with log_to(snakemake.log[0]), offline_hub():
    params = snakemake.params.task
    write_harness_task_data(
        snakemake.wildcards.task,
        parse_task_spec(params["spec"]),
        Path(snakemake.output.record).parent,
        seed=params["seed"],
        workdir=Path.cwd(),
        trained_by=params["trained_by"],
        dataset_commits=params["dataset_commits"],
        tokenizer_dir=checkpoint_dir(snakemake.input.base) if "base" in snakemake.input.keys() else None,
    )
