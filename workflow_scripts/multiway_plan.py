# rule multiway_plan: SimMerge's multi-way merge for one candidate set, chosen from 2-way predictions.
from pathlib import Path

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.io import write_json, write_table
from simmerge.core.logs import log_to
from simmerge.core.runtime import native_threads, runtime_settings
from simmerge.merges.operators import load_operators
from simmerge.multiway.execution import plan_set, read_expert_scores

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    spec = snakemake.params.plan
    names = [spec["base"], *spec["candidates"]]
    plan = plan_set(
        spec["candidates"],
        spec["tasks"],
        max_size=spec["max_size"],
        beam_width=spec["beam_width"],
        min_gain=spec["min_gain"],
        operators=load_operators(spec["operators"]),
        predictor_path=snakemake.input.predictor,
        checkpoints={name: checkpoint_dir(path) for name, path in zip(names, snakemake.input.checkpoints, strict=True)},
        summaries=dict(zip(names, snakemake.input.summaries, strict=True)),
        base=spec["base"],
        expert_scores=read_expert_scores(snakemake.input.scores),
        probe_files=dict(zip(spec["probe_tasks"], snakemake.input.probes, strict=True)),
        feature_spec=spec["features"],
        seed=spec["seed"],
        merge_seed=spec["merge_seed"],
        probes_dir=Path(snakemake.output.probes),
        scratch_dir=runtime_settings(snakemake.config).scratch_dir,
        threads=snakemake.threads,
        trust_remote_code=all(trusts_remote_code(path) for path in snakemake.input.checkpoints),
    )
    write_table(plan.predictions, snakemake.output.predictions)
    write_json({**plan.to_json(), "tasks": spec["tasks"], "candidates": spec["candidates"]}, snakemake.output.plan)
