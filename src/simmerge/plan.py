"""What a config will cost before anything runs (``simmerge plan CONFIG``).

Three parts: the jobs left to run, by rule, from a Snakemake dry-run of the target (nothing is executed); the work
the whole run holds, counted from the config (merges with their seeds, items scored); and an estimate of
job-seconds per rule from a *reference run* — a finished run on the machine at hand, whose benchmark files give
each rule's measured mean seconds per job. The estimate scales the rules that load a model
(:data:`simmerge.catalog.sizing.RULE_SIZING`) linearly with the parameter count (the forward passes and tensor
arithmetic are linear in it at a fixed number of tokens) and leaves the others as measured; it assumes the same
eval sizes per job as the reference. What is measured and what extrapolated is printed with the numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simmerge.catalog.hub import hub_parameter_count, safetensors_parameter_count
from simmerge.catalog.sizing import RULE_SIZING
from simmerge.core.config import resolve_path
from simmerge.core.layout import MANIFEST_NAME, RunLayout
from simmerge.merges.operators import merge_jobs
from simmerge.run import Catalog


def dry_run_counts(config: str | os.PathLike, target: str = "all", workdir: str | os.PathLike = ".") -> dict[str, int]:
    """Jobs per rule a dry-run of ``target`` would run (Snakemake's job-stats table); nothing is executed.

    Jobs behind a Snakemake checkpoint (the multi-way nodes, known once the plans exist) are not in it, nor the
    target rule itself (it runs nothing).

    Raises
    ------
    RuntimeError
        If the dry-run fails; the message holds Snakemake's own.
    """
    command = [sys.executable, "-m", "snakemake", target, "--configfile", str(config), "--dry-run", "--quiet", "rules"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake dry-run of {target} failed:\n{(result.stderr or result.stdout).strip()}")
    counts: dict[str, int] = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+(\d+)\s*", line)
        if match and match.group(1) not in {"total", "job", "count", target}:
            counts[match.group(1)] = int(match.group(2))
    return counts


@dataclass(frozen=True)
class Work:
    """The work a whole run holds, counted from its config."""

    merge_jobs: int
    merges: int  # mergekit runs: a randomised operator's job merges once per seed
    merge_items: int  # items scored over every merge and its tasks
    expert_items: int  # items scored over every checkpoint and task
    checkpoints: int
    tasks: int
    search_merges: int = 0  # CMA-ES (predictor.cma_search): every evaluation and each generation's new best
    search_items: int = 0  # its items: evaluations on the search half, the bests on every item (an upper bound)


def run_work(catalog: Catalog) -> Work:
    """Merges and evaluations of a config's grid and its CMA-ES searches (multi-way nodes and the live bandit not
    included)."""
    n_eval = {name: getattr(spec, "n_eval", None) or 0 for name, spec in catalog.config.tasks.items()}
    limit = catalog.config.scoring.limit
    if limit is not None:
        n_eval = {task: min(n, limit) for task, n in n_eval.items()}
    jobs = merge_jobs(catalog.operators, catalog.ordered_pairs)
    merges = items = 0
    for operator, a, b in jobs:
        seeds = len(catalog.merge_seeds_of(a, b)) if catalog.operators[operator].randomised else 1
        merges += seeds
        items += seeds * sum(n_eval[task] for task in catalog.merge_tasks(a, b))
    search_merges = search_items = 0
    cma = catalog.config.predictor.cma_search
    if cma.enabled:
        generations = cma.budget // cma.popsize
        for a, b in catalog.unordered_pairs:
            pair_items = sum(n_eval[task] for task in catalog.merge_tasks(a, b))
            per_evaluation = min(cma.items or pair_items // 2, pair_items // 2)
            search_merges += generations * cma.popsize + generations
            search_items += generations * cma.popsize * per_evaluation + generations * pair_items
    return Work(
        merge_jobs=len(jobs),
        merges=merges,
        merge_items=items,
        expert_items=len(catalog.names) * sum(n_eval.values()),
        checkpoints=len(catalog.names),
        tasks=len(n_eval),
        search_merges=search_merges,
        search_items=search_items,
    )


def parameter_count(run_dir: str | os.PathLike) -> int | None:
    """The largest ``parameter_count`` of a run's checkpoint manifests (every checkpoint has the base's shape)."""
    counts = [
        json.loads(path.read_text(encoding="utf-8")).get("parameter_count")
        for path in sorted(Path(run_dir).glob(f"checkpoints/*/{MANIFEST_NAME}"))
    ]
    counts = [count for count in counts if count]
    return max(counts) if counts else None


def planned_parameter_count(
    catalog: Catalog, commits: Mapping[str, str], run_dir: str | os.PathLike
) -> tuple[int | None, str]:
    """The parameter count a run's model-loading jobs will see, and where it was read.

    The run's checkpoint manifests once they exist; before that, the base's safetensors headers: an ``hf`` base at
    its (locked) commit from the hub cache or the Hub (:func:`simmerge.catalog.hub.hub_parameter_count`), a
    ``local`` base from its folder. Other sources are built by the run: unknown until then.
    """
    size = parameter_count(run_dir)
    if size:
        return size, f"the checkpoint manifests of {run_dir}"
    source = catalog.base.source
    if source.kind == "hf" and catalog.base.name in commits:
        found = hub_parameter_count(source.repo_id, commits[catalog.base.name])
        if found is not None:
            return found[0], f"{source.repo_id}@{commits[catalog.base.name][:12]} ({found[1]})"
    if source.kind == "local":
        files = sorted(resolve_path(source.path, catalog.workdir).glob("*.safetensors"))
        if files:
            return sum(safetensors_parameter_count(path) for path in files), f"the safetensors headers in {source.path}"
    return None, "not known before the run builds its checkpoints"


def reference_seconds(run_dir: str | os.PathLike) -> pd.Series:
    """Mean wall seconds per job of every rule with benchmark files in a finished run (its last run of each)."""
    means = {}
    for folder in sorted(Path(run_dir, "benchmarks").iterdir()) if Path(run_dir, "benchmarks").is_dir() else []:
        seconds = [float(pd.read_csv(path, sep="\t").iloc[-1]["s"]) for path in sorted(folder.rglob("*.tsv"))]
        if seconds:
            means[folder.name] = sum(seconds) / len(seconds)
    return pd.Series(means, dtype=float)


def estimate(counts: Mapping[str, int], reference: pd.Series, *, scale: float) -> pd.DataFrame:
    """Job-seconds per rule: jobs left × the reference's mean seconds per job × ``scale`` for model-loading rules.

    Returns
    -------
    pandas.DataFrame
        ``rule``, ``jobs``, ``reference_s`` (measured mean per job; NaN when the reference has no job of it),
        ``scaled`` (whether ``scale`` applies), ``estimate_s``.
    """
    rows = []
    for rule, jobs in counts.items():
        measured = float(reference.get(rule, float("nan")))
        scaled = rule in RULE_SIZING
        rows.append(
            {
                "rule": rule,
                "jobs": jobs,
                "reference_s": measured,
                "scaled": scaled,
                "estimate_s": jobs * measured * (scale if scaled else 1.0),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "jobs", "reference_s", "scaled", "estimate_s"])


def plan_text(
    config: str | os.PathLike,
    catalog: Catalog,
    counts: Mapping[str, int],
    *,
    reference: str | os.PathLike | None,
    cores: int,
    commits: Mapping[str, str] | None = None,
) -> str:
    """The report ``simmerge plan`` prints; ``commits`` are the checked run's ``hf`` commits (locked or pinned)."""
    work = run_work(catalog)
    run = RunLayout.of_run(catalog.config.run_name, Path(catalog.workdir) / "results")
    size, size_source = planned_parameter_count(catalog, commits or {}, run.root)
    lines = [
        f"Plan of {config} (run {catalog.config.run_name}): {sum(counts.values())} jobs left to run "
        "(Snakemake dry-run; multi-way nodes come after the plans and are not counted).",
        "",
        f"The whole run: {work.checkpoints} checkpoints × {work.tasks} tasks scored ({work.expert_items} items), "
        f"{work.merge_jobs} merge jobs = {work.merges} mergekit merges (randomised operators once per seed), "
        f"{work.merge_items} items scored on merges."
        + (
            f" CMA-ES (predictor.cma_search): at most {work.search_merges} more merges and {work.search_items} items."
            if work.search_merges
            else ""
        ),
        f"Model size: {f'{size:,} parameters' if size else 'unknown'}, from {size_source}.",
        "",
    ]
    if reference is None:
        table = pd.DataFrame({"rule": list(counts), "jobs": list(counts.values())})
        lines += [
            table.to_string(index=False),
            "",
            "No estimate: give --reference results/<run> of a finished run on this machine (its benchmark files "
            "are the measured costs).",
        ]
        return "\n".join(lines) + "\n"
    reference_size = parameter_count(reference)
    if size and reference_size:
        scale = size / reference_size
        basis = f"{size:,} parameters here vs {reference_size:,} in the reference: model-loading rules × {scale:.3g}"
    else:
        scale = 1.0
        basis = "checkpoint sizes unknown (not built yet): model-loading rules as measured (× 1)"
    table = estimate(counts, reference_seconds(reference), scale=scale)
    total = float(table["estimate_s"].sum(skipna=True))
    missing = table.loc[table["reference_s"].isna(), "rule"].tolist()
    shown = table.assign(reference_s=table["reference_s"].round(1), estimate_s=table["estimate_s"].round(0)).rename(
        columns={"reference_s": "measured s/job", "estimate_s": "estimated job-s"}
    )
    lines += [
        shown.to_string(index=False),
        "",
        f"Measured: mean seconds per job of each rule in {reference} (its benchmark files, on the machine that ran "
        f"it). Extrapolated: {basis}; same eval sizes per job as the reference.",
        f"Estimate: {total / 3600:.2f} CPU/GPU job-hours; about {total / cores / 3600:.2f} h of wall time on {cores} "
        "cores when the jobs keep them busy (a lower bound).",
    ]
    if missing:
        lines.append(f"Not estimated (no job of the rule in the reference): {', '.join(missing)}.")
    return "\n".join(lines) + "\n"


__all__ = [
    "Work",
    "dry_run_counts",
    "estimate",
    "parameter_count",
    "plan_text",
    "planned_parameter_count",
    "reference_seconds",
    "run_work",
]
