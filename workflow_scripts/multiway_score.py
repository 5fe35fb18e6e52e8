# rule multiway_score: lm-eval scores of one merged node on its set's target tasks, normalised by the best candidate.

from simmerge.core.io import read_json, write_json
from simmerge.core.logs import log_to
from simmerge.core.runtime import runtime_settings
from simmerge.merges.items import write_items
from simmerge.multiway.execution import read_expert_scores, score_node
from simmerge.multiway.planning import reference_scores
from simmerge.run import TASK_DIR

with log_to(snakemake.log[0]):
    tasks = snakemake.params.tasks
    expert_scores = read_expert_scores(snakemake.input.scores)
    record = score_node(
        snakemake.input.merged,
        read_json(snakemake.input.record),
        reference_scores(expert_scores, list(expert_scores), tasks),
        task_dir=TASK_DIR,
        data_files=dict(zip(tasks, snakemake.input.eval, strict=True)),
        batch_size=runtime_settings(snakemake.config).batch_size,
        threads=snakemake.threads,
        **snakemake.params.scoring,
    )
    write_items(record.pop("items"), snakemake.output.outcomes)
    write_json(record, snakemake.output.record)
