"""What one merge-and-score costs per operator with the current scoring, and what the default grid then costs.

Runs :func:`simmerge.merges.merging.merge_score` (the body of rule ``merge_score``: mergekit merge, lm-eval scoring
with one-pass exact match, per-item outcomes) for every default operator on one expert pair of a built default
run, once per seed for a randomised operator, and splits each run into merge and scoring seconds. The grid estimate
multiplies these by the default grid's jobs, seeds and items (:func:`simmerge.plan.run_work`): merge seconds per
operator as measured, scoring seconds per item as measured on this pair, plus the measured job start-up. Writes
docs/merge-job-cost.md.

    .venv/bin/python benchmarks/merge_job_cost.py [--run results/default] [--pair fr_hot de] [--threads 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from simmerge.catalog.build import checkpoint_dir
from simmerge.core.io import markdown_table
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.merges.merging import merge_score
from simmerge.merges.operators import merge_jobs
from simmerge.merges.scoring import score_checkpoint
from simmerge.run import TASK_DIR, load

REPO = Path(__file__).resolve().parent.parent


def startup_seconds() -> float:
    """A merge_score job's imports, measured in a fresh interpreter (what every job pays before it works)."""
    code = "import torch, transformers, mergekit.merge, lm_eval.evaluator; from lm_eval.models.huggingface import HFLM"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--pair", nargs=2, default=["fr_hot", "de"])
    parser.add_argument("--threads", type=int, default=1, help="rule merge_score runs with 1 thread per job")
    parser.add_argument("--out", default=str(REPO / "docs" / "merge-job-cost.md"))
    args = parser.parse_args()
    catalog = load(yaml.safe_load(Path(args.config).read_text(encoding="utf-8")))
    layout = RunLayout(Path(args.run))
    a, b = args.pair
    tasks = catalog.merge_tasks(a, b)
    data = {task: layout.task_data(task, "eval") for task in tasks}
    dirs = {name: checkpoint_dir(layout.checkpoint_manifest(name)) for name in (a, b, catalog.base.name)}
    parents = tuple(score_checkpoint(dirs[name], REPO / TASK_DIR, data, threads=args.threads) for name in (a, b))
    for record in parents:
        record.pop("items")
    items = sum(parents[0]["tasks"][task]["n"] for task in tasks)
    rows = []
    for name, operator in catalog.operators.items():
        seeds = catalog.merge_seeds if operator.randomised else [0]
        record = merge_score(
            operator,
            dirs[a],
            dirs[b],
            dirs[catalog.base.name],
            parent_scores=parents,
            task_dir=REPO / TASK_DIR,
            data_files=data,
            seeds=seeds,
            threads=args.threads,
        )
        for run in record["runs"]:
            rows.append(
                {
                    "operator": name,
                    "seed": run["seed"],
                    "merge_s": run["wall_seconds"],
                    "score_s": run["eval_seconds"],
                    "load_s": run["load_seconds"],
                    "score": run["score"],
                }
            )
            print(rows[-1], flush=True)
    write_page(pd.DataFrame(rows), items, startup_seconds(), catalog, args)


def write_page(runs: pd.DataFrame, items: int, startup: float, catalog, args: argparse.Namespace) -> None:
    per_operator = runs.groupby("operator", sort=False).agg(
        runs=("seed", "size"), merge_s=("merge_s", "mean"), score_s=("score_s", "mean"), load_s=("load_s", "mean")
    )
    per_item = runs["score_s"].sum() / (len(runs) * items)
    # the default grid: every job's merges (seeds) and the items of its pair's tasks
    n_eval = {name: getattr(spec, "n_eval", None) or 0 for name, spec in catalog.config.tasks.items()}
    merge_total = score_total = 0.0
    jobs = merge_jobs(catalog.operators, catalog.ordered_pairs)
    for operator, a, b in jobs:
        seeds = len(catalog.merge_seeds) if catalog.operators[operator].randomised else 1
        merge_total += seeds * per_operator.at[operator, "merge_s"]
        score_total += seeds * per_item * sum(n_eval[task] for task in catalog.merge_tasks(a, b))
    startup_total = startup * len(jobs)
    total = merge_total + score_total + startup_total
    merges = sum(len(catalog.merge_seeds) if catalog.operators[op].randomised else 1 for op, _, _ in jobs)
    table = per_operator.reset_index().round(1)
    lines = [
        "# What a merge job costs, and the default grid with one-pass scoring",
        "",
        "Generated by `benchmarks/merge_job_cost.py` (do not edit) from a built default run.",
        f"Machine: {describe_machine()}, {args.threads} torch thread(s) per job (rule merge_score's setting). Command: "
        f"`.venv/bin/python benchmarks/merge_job_cost.py --run {args.run} --pair {' '.join(args.pair)} "
        f"--threads {args.threads}`.",
        "",
        f"Pair {args.pair[0]} + {args.pair[1]}: {items} items per merge (its home tasks), scored with "
        f"`scoring.exact_match: {catalog.config.scoring.exact_match}`. Scoring: {per_item:.3f} s per item "
        f"(evaluation, model load excluded); job start-up (imports, measured in a fresh interpreter): {startup:.1f} s.",
        "",
        markdown_table(table, ["l", "r", "r", "r", "r"]),
        "",
        f"**The default grid** ({len(jobs)} jobs, {merges} merges): merging {merge_total / 60:.0f} min, "
        f"scoring {score_total / 60:.0f} min (at this pair's s/item), job start-up {startup_total / 60:.0f} min, "
        f"model loads not included: **{total / 3600:.2f} job-hours, about {total / 2 / 60:.0f} min of wall time "
        "on 2 cores** (jobs side by side, one thread each).",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
