"""What each merge job cost: the merge, the scoring, and the per-job overhead around them.

A ``merge_score`` record holds the seconds mergekit took (``wall_seconds``, all seeds) and the seconds lm-eval
took (``eval_seconds``); Snakemake's benchmark file of the same job holds the job's whole wall time. The
difference is the overhead of running a job at all: interpreter start, imports (torch, transformers, mergekit,
lm-eval), task materialisation and writing the record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def merge_costs(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per merge job of a run: merge, scoring, overhead and whole-job seconds, and peak memory.

    ``load_s`` is the part of ``eval_s`` spent building lm-eval's model (loading the merged weights).

    Parameters
    ----------
    run_dir : path
        ``results/<run_name>``; reads ``merges/*/*.json`` and ``benchmarks/merge_score/*/*.tsv``.

    Returns
    -------
    pandas.DataFrame
        :data:`COST_COLUMNS`; ``job_s`` and ``overhead_s`` are NaN for a job without a benchmark file, and
        ``peak_rss_mb`` is Snakemake's ``max_rss`` when there is one (else the record's own).
    """
    run = Path(run_dir)
    rows = []
    for path in sorted((run / "merges").glob("*/*.json")):
        record = read_json(path)
        bench = run / "benchmarks" / "merge_score" / path.parent.name / f"{path.stem}.tsv"
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


def benchmark_seconds(run_dir: str | os.PathLike, rule: str) -> dict[str, float]:
    """Wall seconds of every job of one rule, keyed by its benchmark file's path below the rule's folder."""
    folder = Path(run_dir) / "benchmarks" / rule
    return {
        str(path.relative_to(folder).with_suffix("")): float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        for path in sorted(folder.rglob("*.tsv"))
    }


def summary_seconds(run_dir: str | os.PathLike) -> dict[str, float]:
    """Wall seconds of each checkpoint's model summary: its probe passes (one per task), its weight sketch and
    gathering them (rules ``probe_pass``, ``weight_sketch``, ``probe_features``)."""
    totals = dict(benchmark_seconds(run_dir, "probe_features"))
    for name, seconds in benchmark_seconds(run_dir, "weight_sketch").items():
        totals[name] = totals.get(name, 0.0) + seconds
    for key, seconds in benchmark_seconds(run_dir, "probe_pass").items():
        name = key.split("/", 1)[0]
        totals[name] = totals.get(name, 0.0) + seconds
    return totals


def decision_costs(run_dir: str | os.PathLike, experts: Sequence[str]) -> pd.DataFrame:
    """Per unordered expert pair: what SimMerge's decision cost against merging and evaluating every operator.

    SimMerge's share for {a, b}: each member's model summary (:func:`summary_seconds`) divided among the pairs
    it serves (N − 1), the pair features of both orders, and the predictor fit divided among all pairs (the
    prediction itself is negligible). Merge-and-evaluate: every ``merge_score`` job of the pair (both orders of
    an order-sensitive operator). Costs are the jobs' wall seconds from their ``benchmark:`` files.

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``simmerge_s``, ``merge_evaluate_s``, ``ratio`` (merge-and-evaluate ÷ SimMerge).
    """
    probes = summary_seconds(run_dir)
    pairs = benchmark_seconds(run_dir, "pair_features")
    fit = sum(benchmark_seconds(run_dir, "predictor").values())
    merges = merge_costs(run_dir)
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


__all__ = ["COST_COLUMNS", "benchmark_seconds", "cost_summary", "decision_costs", "merge_costs", "summary_seconds"]
