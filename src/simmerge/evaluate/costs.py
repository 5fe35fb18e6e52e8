"""What a run cost: each merge job's merge, scoring and per-job overhead, SimMerge's decision against
merge-and-evaluate, and the job-seconds of every rule.

Every function reads the files it is given; given none, it reads every matching file of the run folder (what
``simmerge costs --run`` wants: everything the folder holds). A rule passes its declared inputs instead, so files
a run no longer makes (a removed operator's merges) do not count.

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


def merge_costs(run_dir: str | os.PathLike, records: Iterable[str | os.PathLike] | None = None) -> pd.DataFrame:
    """One row per merge job of a run: merge, scoring, overhead and whole-job seconds, and peak memory.

    ``load_s`` is the part of ``eval_s`` spent building lm-eval's model (loading the merged weights).

    Parameters
    ----------
    run_dir : path
        ``results/<run_name>``; each record's job benchmark is ``benchmarks/merge_score/<a>__<b>/<op>.tsv`` in it.
    records : iterable of path, optional
        The merge records ``merges/<a>__<b>/<op>.json`` to read; by default every one in ``run_dir``.

    Returns
    -------
    pandas.DataFrame
        :data:`COST_COLUMNS`; ``job_s`` and ``overhead_s`` are NaN for a job without a benchmark file, and
        ``peak_rss_mb`` is Snakemake's ``max_rss`` when there is one (else the record's own).
    """
    run = Path(run_dir)
    rows = []
    for path in map(Path, sorted((run / "merges").glob("*/*.json")) if records is None else records):
        record = read_json(path)
        bench = run / "benchmarks" / "merge_score" / path.parent.name / f"{path.stem}.tsv"
        job_s, rss = float("nan"), record.get("peak_rss_mb")
        if bench.is_file():
            timing = _last_row(bench)
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


Benchmarks = Mapping[str, Sequence[str | os.PathLike]]
"""Benchmark files by rule: ``{rule: [benchmarks/<rule>/<job>.tsv, ...]}``."""


def benchmark_seconds(
    run_dir: str | os.PathLike, rule: str, files: Iterable[str | os.PathLike] | None = None
) -> dict[str, float]:
    """Wall seconds of every job of one rule, keyed by its benchmark file's path below ``benchmarks/<rule>/``.

    ``files`` are the rule's benchmark files to read; by default every one in ``run_dir``.
    """
    folder = Path(run_dir) / "benchmarks" / rule
    paths = sorted(folder.rglob("*.tsv")) if files is None else map(Path, files)
    return {str(path.relative_to(folder).with_suffix("")): float(_last_row(path)["s"]) for path in paths}


def _last_row(path: Path) -> pd.Series:
    """A benchmark file's measurement (its last row: ``benchmark: repeat(...)`` writes one row per repeat)."""
    return pd.read_csv(path, sep="\t").iloc[-1]


def summary_seconds(run_dir: str | os.PathLike, benchmarks: Benchmarks | None = None) -> dict[str, float]:
    """Wall seconds of each checkpoint's model summary: its probe passes (one per task), its weight sketch and
    gathering them (rules ``probe_pass``, ``weight_sketch``, ``probe_features``).

    ``benchmarks`` gives the files to read by rule; by default every one in ``run_dir``.
    """

    def seconds(rule: str) -> dict[str, float]:
        return benchmark_seconds(run_dir, rule, None if benchmarks is None else benchmarks.get(rule, ()))

    totals = dict(seconds("probe_features"))
    for name, value in seconds("weight_sketch").items():
        totals[name] = totals.get(name, 0.0) + value
    for key, value in seconds("probe_pass").items():
        name = key.split("/", 1)[0]
        totals[name] = totals.get(name, 0.0) + value
    return totals


def decision_costs(
    run_dir: str | os.PathLike,
    experts: Sequence[str],
    *,
    benchmarks: Benchmarks | None = None,
    records: Iterable[str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Per unordered expert pair: what SimMerge's decision cost against merging and evaluating every operator.

    SimMerge's share for {a, b}: each member's model summary (:func:`summary_seconds`) divided among the pairs
    it serves (N − 1), the pair features of both orders, and the predictor fit divided among all pairs (the
    prediction itself is negligible). Merge-and-evaluate: every ``merge_score`` job of the pair (both orders of
    an order-sensitive operator). Costs are the jobs' wall seconds from their ``benchmark:`` files.

    Parameters
    ----------
    run_dir : path
        ``results/<run_name>``.
    experts : sequence of str
        The catalog's experts, in catalog order (the pairs' order).
    benchmarks : mapping of str to sequence of path, optional
        The benchmark files to read, by rule (``probe_pass``, ``weight_sketch``, ``probe_features``,
        ``pair_features``, ``predictor``); by default every one in ``run_dir``.
    records : iterable of path, optional
        The merge records to read (see :func:`merge_costs`); by default every one in ``run_dir``.

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``simmerge_s``, ``merge_evaluate_s``, ``ratio`` (merge-and-evaluate ÷ SimMerge).
    """

    def seconds(rule: str) -> dict[str, float]:
        return benchmark_seconds(run_dir, rule, None if benchmarks is None else benchmarks.get(rule, ()))

    probes = summary_seconds(run_dir, benchmarks)
    pairs = seconds("pair_features")
    fit = sum(seconds("predictor").values())
    merges = merge_costs(run_dir, records)
    n = len(experts)
    n_pairs = n * (n - 1) // 2
    rows = []
    for i, a in enumerate(experts):
        for b in experts[i + 1 :]:
            simmerge = (
                (probes.get(a, float("nan")) + probes.get(b, float("nan"))) / (n - 1)
                + pairs.get(f"{a}__{b}", float("nan"))
                + pairs.get(f"{b}__{a}", float("nan"))
                + fit / n_pairs
            )
            own = merges[((merges["a"] == a) & (merges["b"] == b)) | ((merges["a"] == b) & (merges["b"] == a))]
            evaluate = float(own["job_s"].sum()) if len(own) else float("nan")
            rows.append(
                {"pair": f"{a}|{b}", "simmerge_s": simmerge, "merge_evaluate_s": evaluate, "ratio": evaluate / simmerge}
            )
    return pd.DataFrame(rows, columns=["pair", "simmerge_s", "merge_evaluate_s", "ratio"])


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
        timings = pd.DataFrame([_last_row(Path(path)) for path in benchmarks.get(rule, ())])
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
    "benchmark_seconds",
    "cost_summary",
    "decision_costs",
    "merge_costs",
    "rule_seconds",
    "summary_seconds",
]
