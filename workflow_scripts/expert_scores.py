# rule expert_scores: lm-eval scores of one checkpoint on every task.
from pathlib import Path

from simmerge.catalog import read_manifest
from simmerge.io import write_json
from simmerge.logs import log_to
from simmerge.scoring import score_checkpoint

with log_to(snakemake.log[0]):
    manifest = read_manifest(snakemake.input.manifest)
    scores = score_checkpoint(
        manifest["path"],
        Path(snakemake.input.tasks[0]).parent,
        dict(zip(snakemake.params.tasks, snakemake.input.eval, strict=True)),
        threads=snakemake.threads,
        **snakemake.params.scoring,
    )
    write_json({"checkpoint": manifest["name"], **scores}, snakemake.output[0])
