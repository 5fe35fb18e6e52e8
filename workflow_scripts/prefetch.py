# rule prefetch: every hf checkpoint and lm-eval dataset of the run into the Hugging Face caches (needs the Hub).
from simmerge.catalog.harness import prefetch_task
from simmerge.catalog.hub import DEFAULT_PATTERNS, REMOTE_CODE_PATTERNS, prefetch_checkpoint
from simmerge.core.io import write_json
from simmerge.core.logs import log_to

with log_to(snakemake.log[0]):
    downloads = snakemake.params.downloads
    record = {
        "checkpoints": {
            name: prefetch_checkpoint(
                source["repo_id"],
                source["revision"],
                allow_patterns=DEFAULT_PATTERNS + (REMOTE_CODE_PATTERNS if source["trust_remote_code"] else ()),
            )
            for name, source in downloads["checkpoints"].items()
        },
        "tasks": {task: prefetch_task(scoring) for task, scoring in downloads["tasks"].items()},
    }
    write_json(record, snakemake.output[0])
