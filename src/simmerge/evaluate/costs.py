"""What the run's jobs cost: each merge job split into merge, scoring and overhead; SimMerge's decision against
merge-and-evaluate per pair; and the labels behind the predictor, with the break-even number of new decisions.

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
from simmerge.evaluate.selection import unit_of
from simmerge.merges.operators import canonical_pair

COST_COLUMNS = [
    "a",
    "b",
    "operator",
    "method",
    "n_merges",
    "n_items",
    "probe_passes",
    "drift_s",
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
                "n_items": _items_scored(record),
                "probe_passes": int((record.get("parent_drift") or {}).get("probe_passes") or 0),
                "drift_s": float((record.get("parent_drift") or {}).get("seconds") or 0.0),
                "merge_s": merge_s,
                "eval_s": eval_s,
                "load_s": float(record.get("load_seconds") or 0.0),
                "overhead_s": job_s - merge_s - eval_s,
                "job_s": job_s,
                "peak_rss_mb": rss,
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def _items_scored(record: Mapping) -> int:
    """Items a merge job scored: each task's items, once per merge that was scored."""
    per_merge = sum(int(task.get("n") or 0) for task in (record.get("tasks") or {}).values())
    runs = record.get("runs") or [record]
    return per_merge * sum(1 for run in runs if run.get("status", "ok") == "ok")


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


DECISION_COLUMNS = [
    "pair",
    "chosen",
    "summaries_s",
    "pair_features_s",
    "predict_s",
    "chosen_merge_s",
    "simmerge_s",
    "merge_evaluate_s",
    "ratio",
]


def decision_costs(
    layout: RunLayout,
    base: str,
    experts: Sequence[str],
    tasks: Sequence[str],
    merge_records: Iterable[str | os.PathLike],
    units: str | os.PathLike,
) -> pd.DataFrame:
    """Per unordered expert pair: the marginal cost of SimMerge's decision against merging and evaluating every
    operator, once a labelled catalog and a fitted predictor exist (the labels: :func:`break_even`).

    SimMerge's cost for {a, b} is what a new decision adds:

    - ``summaries_s``: each member's model summary (:func:`summary_seconds`) divided among the N − 1 pairs it
      serves, plus the base's summary, which every pair's features read, divided among all N (N − 1) / 2 pairs;
    - ``pair_features_s``: the pair features of both orders;
    - ``predict_s``: the predictor fit divided among all pairs, standing in for the prediction (an upper bound:
      predicting with the fitted predictor takes a fraction of a second and has no job of its own);
    - ``chosen_merge_s``: the one ``merge_score`` job of the candidate it chose, which must still be merged and
      evaluated; several choices for a unit (tested in several folds) are averaged, and a pair that no fold
      tested gets the mean of its merge jobs.

    Merge-and-evaluate: every ``merge_score`` job of the pair (both orders of an order-sensitive operator). Costs
    are the jobs' wall seconds from their ``benchmark:`` files.

    Only the run's own jobs count: the benchmarks of ``base`` and ``experts`` on ``tasks`` and the given merge
    records, never what else the folder holds (records of an operator since removed from the config, a task's
    probe passes).

    Parameters
    ----------
    layout : RunLayout
        The run.
    base : str
        The run's base checkpoint.
    experts : sequence of str
        The run's experts.
    tasks : sequence of str
        The run's tasks (one probe pass per checkpoint and task).
    merge_records : iterable of path
        The records of the run's ``merge_score`` jobs.
    units : path
        ``compare/checkpoint/units.csv``: per test unit ``unit`` (``a|b``, names sorted) and ``chosen``
        (``operator`` or ``operator@anchor``, or several such labels joined by ``"; "``); other columns are
        ignored.

    Returns
    -------
    pandas.DataFrame
        :data:`DECISION_COLUMNS`: ``pair`` (``a|b``, names sorted, as the units table writes it), ``chosen`` (the
        labels, missing when no fold tested the pair), SimMerge's parts and their sum ``simmerge_s``,
        ``merge_evaluate_s`` and ``ratio`` (merge-and-evaluate ÷ SimMerge).

    Raises
    ------
    KeyError
        When a chosen label names a merge that is not among ``merge_records``.

    Notes
    -----
    Rule ``report`` declares the merge records as inputs but not the benchmark files: Snakemake writes a job's
    benchmark when the job ends and every job timed here is upstream of a declared input of the report, so they
    exist when it runs; declared, a deleted benchmark file would re-run the merge it times.
    """
    summaries = {name: summary_seconds(layout, name, tasks) for name in (base, *experts)}
    fit = job_seconds(layout.benchmark("predictor", "fit"))
    merges = merge_costs(layout, merge_records)
    jobs = {(row.operator, row.a, row.b): row.job_s for row in merges.itertuples()}
    choices = _choices(units)
    n = len(experts)
    n_pairs = n * (n - 1) // 2
    rows = []
    for i, a in enumerate(experts):
        for b in experts[i + 1 :]:
            pair = unit_of(a, b)
            own = merges.loc[merges["a"].isin((a, b)) & merges["b"].isin((a, b)), "job_s"]
            evaluate = float(own.sum()) if len(own) else float("nan")
            labels = choices.get(pair, [])
            keys = [_merge_of(label, a, b) for label in labels]
            if missing := [key for key in keys if key not in jobs]:
                raise KeyError(f"pair {pair}: the chosen merge {missing[0]} is not among the run's merge records")
            chosen = sum(jobs[key] for key in keys) / len(keys) if keys else float(own.mean())
            parts = {
                "summaries_s": (summaries[a] + summaries[b]) / (n - 1) + summaries[base] / n_pairs,
                "pair_features_s": job_seconds(layout.benchmark("pair_features", layout.pair(a, b)))
                + job_seconds(layout.benchmark("pair_features", layout.pair(b, a))),
                "predict_s": fit / n_pairs,
                "chosen_merge_s": chosen,
            }
            simmerge = sum(parts.values())
            rows.append(
                {
                    "pair": pair,
                    "chosen": "; ".join(labels) if labels else None,
                    **parts,
                    "simmerge_s": simmerge,
                    "merge_evaluate_s": evaluate,
                    "ratio": evaluate / simmerge,
                }
            )
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def _choices(units: str | os.PathLike) -> dict[str, list[str]]:
    """Per unit of the units table, every label chosen for it (a unit tested in several folds has several)."""
    table = pd.read_csv(units, usecols=["unit", "chosen"]).dropna()
    choices: dict[str, list[str]] = {}
    for unit, chosen in zip(table["unit"], table["chosen"], strict=True):
        choices.setdefault(unit, []).extend(label.strip() for label in str(chosen).split(";"))
    return choices


def _merge_of(label: str, a: str, b: str) -> tuple[str, str, str]:
    """The merge job ``(operator, first, second)`` behind a chosen label of pair {a, b}: ``operator@anchor`` is
    the order-sensitive merge with the anchor first; a bare ``operator`` is symmetric, merged once under the
    canonical order (:func:`simmerge.merges.operators.canonical_pair`)."""
    operator, _, anchor = label.partition("@")
    if anchor:
        return operator, anchor, b if anchor == a else a
    return (operator, *canonical_pair(a, b))


def break_even(
    layout: RunLayout,
    base: str,
    experts: Sequence[str],
    tasks: Sequence[str],
    merge_records: Iterable[str | os.PathLike],
    decisions: pd.DataFrame,
) -> dict[str, float | None]:
    """What the labels that trained the predictor cost, and after how many new decisions SimMerge has paid them back.

    The labels are the labelled catalog's whole merge grid (every ``merge_score`` job of the run), every
    checkpoint's model summary (the base's included), every ordered pair's features and the predictor fit. With
    ``m`` SimMerge's mean marginal cost per decision and ``g`` merge-and-evaluate's mean per pair (both from
    ``decisions``), SimMerge over ``k`` new decisions costs ``labels + k m`` against ``k g``: it is cheaper once
    ``k`` exceeds ``k* = labels / (g − m)``, and never when ``m ≥ g``.

    Parameters
    ----------
    layout : RunLayout
        The run.
    base : str
        The run's base checkpoint.
    experts : sequence of str
        The run's experts.
    tasks : sequence of str
        The run's tasks.
    merge_records : iterable of path
        The records of the run's ``merge_score`` jobs.
    decisions : pandas.DataFrame
        :func:`decision_costs` of the same run.

    Returns
    -------
    dict
        ``merge_grid_s``, ``summaries_s``, ``pair_features_s``, ``fit_s`` and their sum ``labels_s``;
        ``marginal_s`` (m), ``grid_s`` (g); ``break_even`` (k*, a float), None when ``m ≥ g`` (or either is
        unknown).
    """
    parts = {
        "merge_grid_s": float(merge_costs(layout, merge_records)["job_s"].sum()),
        "summaries_s": sum(summary_seconds(layout, name, tasks) for name in (base, *experts)),
        "pair_features_s": sum(
            job_seconds(layout.benchmark("pair_features", layout.pair(a, b)))
            for a in experts
            for b in experts
            if a != b
        ),
        "fit_s": job_seconds(layout.benchmark("predictor", "fit")),
    }
    labels = sum(parts.values())
    marginal, grid = float(decisions["simmerge_s"].mean()), float(decisions["merge_evaluate_s"].mean())
    return {
        **parts,
        "labels_s": labels,
        "marginal_s": marginal,
        "grid_s": grid,
        # a NaN on either side compares False: no break-even claimed from missing timings
        "break_even": labels / (grid - marginal) if grid > marginal else None,
    }


def unit_prices(costs: pd.DataFrame) -> dict[str, float]:
    """What one merge and one scored item cost, from the run's merge jobs (:func:`merge_costs`).

    ``merge_s``: a job's merging, loading the merged model and its overhead (start-up, imports, task set-up),
    divided among its merges — what a search pays per candidate it merges; ``item_s``: its scoring without the
    model load, divided among the items it scored; ``probe_s``: a merge's pass over one task's probes (the
    parent drift, :mod:`simmerge.merges.drift`), NaN when the run measured none. The drift's seconds are part of
    the job's overhead here and are taken out of ``merge_s``.
    """
    timed = costs.dropna(subset=["job_s"])
    merges, items, passes = timed["n_merges"].sum(), timed["n_items"].sum(), timed["probe_passes"].sum()
    per_merge = (timed["merge_s"] + timed["load_s"] + timed["overhead_s"] - timed["drift_s"]).sum()
    return {
        "merge_s": float(per_merge / merges) if merges else float("nan"),
        "item_s": float((timed["eval_s"] - timed["load_s"]).sum() / items) if items else float("nan"),
        "probe_s": float(timed["drift_s"].sum() / passes) if passes else float("nan"),
    }


BUDGET_COLUMNS = [
    "method",
    "merges",
    "items",
    "probe_passes",
    "features_s",
    "merging_s",
    "scoring_s",
    "probing_s",
    "seconds",
    "score",
    "bound",
]


def method_budgets(summary: pd.DataFrame, decisions: pd.DataFrame, prices: Mapping[str, float]) -> pd.DataFrame:
    """Every selection method on the same axes, per decision: merges, items scored, and the seconds they cost.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``search/summary.csv`` (:func:`simmerge.evaluate.methods.methods_summary`): per method its mean merges,
        items and probe passes per pair, held-out score, the share of its decisions that read the features
        (``reads_features``: 0 to 1; a fixed policy reads them only under a norm order rule) and whether it reads
        the held-out items (``bound``).
    decisions : pandas.DataFrame
        :func:`decision_costs`: a decision that reads the features pays SimMerge's feature share per pair (the
        checkpoints' model summaries, the pair features, the predictor fit).
    prices : mapping
        :func:`unit_prices`.

    Returns
    -------
    pandas.DataFrame
        :data:`BUDGET_COLUMNS`, seconds as measured on this run's jobs (marginal: the labels of the training pairs
        are not counted; :func:`break_even` counts them).
    """
    features = float((decisions["summaries_s"] + decisions["pair_features_s"] + decisions["predict_s"]).mean())
    reads = summary["reads_features"] if "reads_features" in summary else pd.Series(1.0, summary.index)
    table = pd.DataFrame(
        {
            "method": summary["method"],
            "merges": summary["merges"],
            "items": summary["items"],
            "features_s": reads.astype(float) * features,
            "merging_s": summary["merges"] * prices["merge_s"],
            "scoring_s": summary["items"] * prices["item_s"],
        }
    )
    passes = summary["probe_passes"] if "probe_passes" in summary else pd.Series(0.0, summary.index)
    table.insert(3, "probe_passes", passes)
    table["probing_s"] = (passes * prices.get("probe_s", float("nan"))).where(passes > 0, 0.0)
    table["seconds"] = table["features_s"] + table["merging_s"] + table["scoring_s"] + table["probing_s"]
    table["score"] = summary["score"]
    table["bound"] = summary["bound"].astype(bool)
    return table[BUDGET_COLUMNS]


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
    "BUDGET_COLUMNS",
    "COST_COLUMNS",
    "DECISION_COLUMNS",
    "Benchmarks",
    "break_even",
    "cost_summary",
    "decision_costs",
    "job_seconds",
    "merge_costs",
    "method_budgets",
    "rule_seconds",
    "summary_seconds",
    "unit_prices",
]
