# rule multiway_score: lm-eval scores of one merged node on its set's target tasks, normalised by the best candidate.
from pathlib import Path

from simmerge.io import read_json, write_json
from simmerge.logs import log_to
from simmerge.multiway import reference_scores, score_node

with log_to(snakemake.log[0]):
    tasks = snakemake.params.tasks
    experts = {record["checkpoint"]: record for record in map(read_json, snakemake.input.scores)}
    expert_scores = {name: {t: r["score"] for t, r in record["tasks"].items()} for name, record in experts.items()}
    record = score_node(
        snakemake.input.merged,
        read_json(snakemake.input.record),
        reference_scores(expert_scores, list(experts), tasks),
        task_dir=Path(snakemake.input.tasks[0]).parent,
        data_files=dict(zip(tasks, snakemake.input.eval, strict=True)),
        threads=snakemake.threads,
        **snakemake.params.scoring,
    )
    write_json(record, snakemake.output[0])
