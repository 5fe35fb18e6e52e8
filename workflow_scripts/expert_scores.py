# rule expert_scores: lm-eval score of one checkpoint on one task.

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.catalog.manifest import checkpoints_sha256
from simmerge.core.io import read_json, write_json
from simmerge.core.logs import log_to
from simmerge.core.runtime import runtime_settings
from simmerge.merges.items import write_items
from simmerge.merges.scoring import score_checkpoint
from simmerge.run import TASK_DIR

with log_to(snakemake.log[0]):
    scores = score_checkpoint(
        checkpoint_dir(snakemake.input.manifest),
        TASK_DIR,
        {snakemake.wildcards.task: snakemake.input.eval},
        batch_size=runtime_settings(snakemake.config).batch_size,
        threads=snakemake.threads,
        trust_remote_code=trusts_remote_code(snakemake.input.manifest),
        **snakemake.params.scoring,
    )
    write_items(scores.pop("items")[snakemake.wildcards.task], snakemake.output.outcomes)
    # the weights scored, by digest: a score of a checkpoint rebuilt since is found by the report
    cited = checkpoints_sha256(snakemake.input.manifest)
    write_json(
        {**scores, "checkpoint": read_json(snakemake.input.manifest)["name"], "checkpoints_sha256": cited},
        snakemake.output.record,
    )
