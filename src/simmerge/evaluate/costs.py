"""What each merge job cost: the merge, the scoring, and the per-job overhead around them.

A ``merge_score`` record holds the seconds mergekit took (``wall_seconds``, all seeds) and the seconds lm-eval
took (``eval_seconds``); Snakemake's benchmark file of the same job holds the job's whole wall time. The
difference is the overhead of running a job at all: interpreter start, imports (torch, transformers, mergekit,
lm-eval), task materialisation and writing the record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from simmerge.core.io import read_json
from simmerge.core.layout import RunLayout

COST_COLUMNS = [
    "a",
    "b",
    "operator",
    "method",
    "n_merges",
    "merge_s",
    "eval_s",
    "load_s",
    "overhead_s",
    "job_s",
    "peak_rss_mb",
]


def merge_costs(layout: RunLayout, records: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per merge job: merge, scoring, overhead and whole-job seconds, and peak memory.

    ``load_s`` is the part of ``eval_s`` spent building lm-eval's model (loading the merged weights).

    Parameters
    ----------
    layout : RunLayout
        The run; each job's benchmark file is its ``merge_score`` benchmark there.
    records : iterable of path
        The ``merge_score`` records to cost: the run's merge jobs (rule ``report``), or every record the folder
        holds (``layout.glob(layout.merge_record("*", "*", "*"))``, ``simmerge costs``).

    Returns
    -------
    pandas.DataFrame
        :data:`COST_COLUMNS`; ``job_s`` and ``overhead_s`` are NaN for a job without a benchmark file, and
        ``peak_rss_mb`` is Snakemake's ``max_rss`` when there is one (else the record's own).
    """
    rows = []
    for path in records:
        record = read_json(path)
        bench = layout.benchmark("merge_score", layout.pair(record["a"], record["b"]), record["operator"])
        job_s, rss = float("nan"), record.get("peak_rss_mb")
        if bench.is_file():
            timing = pd.read_csv(bench, sep="\t").iloc[-1]
            job_s, rss = float(timing["s"]), float(timing["max_rss"])
        merge_s, eval_s = float(record["wall_seconds"]), float(record.get("eval_seconds") or 0.0)
        rows.append(
            {
                "a": record["a"],
                "b": record["b"],
                "operator": record["operator"],
                "method": record["method"],
                "n_merges": len(record.get("runs") or [None]),
                "merge_s": merge_s,
                "eval_s": eval_s,
                "load_s": float(record.get("load_seconds") or 0.0),
                "overhead_s": job_s - merge_s - eval_s,
                "job_s": job_s,
                "peak_rss_mb": rss,
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def cost_summary(costs: pd.DataFrame, by: Sequence[str] = ("operator",)) -> pd.DataFrame:
    """Mean seconds per job (and per merge) grouped by ``by``, with totals in the last row."""
    grouped = costs.groupby(list(by), sort=False)
    table = grouped.agg(
        jobs=("job_s", "size"),
        merges=("n_merges", "sum"),
        merge_s=("merge_s", "mean"),
        eval_s=("eval_s", "mean"),
        load_s=("load_s", "mean"),
        overhead_s=("overhead_s", "mean"),
        job_s=("job_s", "mean"),
        peak_rss_mb=("peak_rss_mb", "max"),
    ).reset_index()
    total = {
        **{key: "all" for key in by},
        "jobs": len(costs),
        "merges": int(costs["n_merges"].sum()),
        "merge_s": costs["merge_s"].sum(),
        "eval_s": costs["eval_s"].sum(),
        "load_s": costs["load_s"].sum(),
        "overhead_s": costs["overhead_s"].sum(),
        "job_s": costs["job_s"].sum(),
        "peak_rss_mb": costs["peak_rss_mb"].max(),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def job_seconds(benchmark: str | os.PathLike) -> float:
    """Wall seconds of one job from its Snakemake benchmark file (its last repeat); NaN when there is none."""
    path = Path(benchmark)
    return float(pd.read_csv(path, sep="\t")["s"].iloc[-1]) if path.is_file() else float("nan")


def summary_seconds(layout: RunLayout, name: str, tasks: Sequence[str]) -> float:
    """Wall seconds of one checkpoint's model summary: its probe pass on each of ``tasks``, its weight sketch and
    gathering them (rules ``probe_pass``, ``weight_sketch``, ``probe_features``)."""
    return (
        sum(job_seconds(layout.benchmark("probe_pass", name, task)) for task in tasks)
        + job_seconds(layout.benchmark("weight_sketch", name))
        + job_seconds(layout.benchmark("probe_features", name))
    )


def decision_costs(
    layout: RunLayout,
    experts: Sequence[str],
    tasks: Sequence[str],
    merge_records: Iterable[str | os.PathLike],
) -> pd.DataFrame:
    """Per unordered expert pair: what SimMerge's decision cost against merging and evaluating every operator.

    SimMerge's share for {a, b}: each member's model summary (:func:`summary_seconds`) divided among the pairs
    it serves (N − 1), the pair features of both orders, and the predictor fit divided among all pairs (the
    prediction itself is negligible). Merge-and-evaluate: every ``merge_score`` job of the pair (both orders of
    an order-sensitive operator). Costs are the jobs' wall seconds from their ``benchmark:`` files.

    Only the run's own jobs count: the benchmarks of ``experts`` on ``tasks`` and the given merge records, never
    what else the folder holds (records of an operator since removed from the config, a task's probe passes).

    Parameters
    ----------
    layout : RunLayout
        The run.
    experts : sequence of str
        The run's experts.
    tasks : sequence of str
        The run's tasks (one probe pass per checkpoint and task).
    merge_records : iterable of path
        The records of the run's ``merge_score`` jobs.

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``simmerge_s``, ``merge_evaluate_s``, ``ratio`` (merge-and-evaluate ÷ SimMerge).

    Notes
    -----
    Rule ``report`` declares the merge records as inputs but not the benchmark files: Snakemake writes a job's
    benchmark when the job ends and every job timed here is upstream of a declared input of the report, so they
    exist when it runs; declared, a deleted benchmark file would re-run the merge it times.
    """
    probes = {name: summary_seconds(layout, name, tasks) for name in experts}
    fit = job_seconds(layout.benchmark("predictor", "fit"))
    merges = merge_costs(layout, merge_records)
    n = len(experts)
    n_pairs = n * (n - 1) // 2
    rows = []
    for i, a in enumerate(experts):
        for b in experts[i + 1 :]:
            simmerge = (
                (probes[a] + probes[b]) / (n - 1)
                + job_seconds(layout.benchmark("pair_features", layout.pair(a, b)))
                + job_seconds(layout.benchmark("pair_features", layout.pair(b, a)))
                + fit / n_pairs
            )
            own = merges[((merges["a"] == a) & (merges["b"] == b)) | ((merges["a"] == b) & (merges["b"] == a))]
            evaluate = float(own["job_s"].sum()) if len(own) else float("nan")
            rows.append(
                {"pair": f"{a}|{b}", "simmerge_s": simmerge, "merge_evaluate_s": evaluate, "ratio": evaluate / simmerge}
            )
    return pd.DataFrame(rows, columns=["pair", "simmerge_s", "merge_evaluate_s", "ratio"])


Benchmarks = Mapping[str, Sequence[str | os.PathLike]]
"""Benchmark files by rule: ``{rule: [benchmarks/<rule>/<job>.tsv, ...]}``."""


def rule_seconds(benchmarks: Benchmarks, stages: Mapping[str, str]) -> pd.DataFrame:
    """Job-seconds of every rule of a run: how many jobs, their summed, mean and longest wall seconds, and the
    largest peak memory, grouped by DAG stage.

    Parameters
    ----------
    benchmarks : mapping of str to sequence of path
        Each rule's benchmark files (one per job).
    stages : mapping of str to str
        The stage of each rule; rows follow its order.

    Returns
    -------
    pandas.DataFrame
        ``stage``, ``rule``, ``jobs``, ``total_s``, ``mean_s``, ``max_s``, ``peak_rss_mb``; one row per rule
        with at least one job.
    """
    rows = []
    for rule, stage in stages.items():
        timings = pd.DataFrame([pd.read_csv(path, sep="\t").iloc[-1] for path in benchmarks.get(rule, ())])
        if timings.empty:
            continue
        seconds = timings["s"].astype(float)
        rows.append(
            {
                "stage": stage,
                "rule": rule,
                "jobs": len(timings),
                "total_s": seconds.sum(),
                "mean_s": seconds.mean(),
                "max_s": seconds.max(),
                "peak_rss_mb": pd.to_numeric(timings["max_rss"], errors="coerce").max(),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "rule", "jobs", "total_s", "mean_s", "max_s", "peak_rss_mb"])


__all__ = [
    "COST_COLUMNS",
    "Benchmarks",
    "cost_summary",
    "decision_costs",
    "job_seconds",
    "merge_costs",
    "rule_seconds",
    "summary_seconds",
]
