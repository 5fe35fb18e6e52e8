"""How far the labels move when a run is repeated: two runs' labels tables, row by row, against the eval noise.

Two runs of the same catalog (another machine, or the experts retrained with other seeds: ``catalog.replicate``)
give two labels tables over the same (ordered pair, task, operator) grid. :func:`compare_labels` lines them up and
measures each difference Δ = B − A against its eval noise, the combined standard error
``sqrt(se_A² + se_B²)`` of the two scores (:func:`simmerge.evaluate.stats.combined_stderr`):

- the label (``normalised``: the merge's metric over the better parent's), whose standard error is the metric's
  ``stderr`` over the better parent's score (the parent score is taken as exact);
- the merge score (``merge_score``, the mean label over the pair's tasks) with its ``merge_score_stderr``.

The summary ratio SD(Δ) / RMS(combined SE) puts the replication noise beside the eval noise: about 1 when rebuilding
the experts moves a label as much as scoring it on a fresh draw of items would, below 1 when it moves labels less.

Both runs score the same items, so with their per-item outcomes (``label_items.parquet``) each Δ also gets its
paired standard error, ``sqrt(Var_i(v_B − v_A) / n)`` per task (:func:`simmerge.evaluate.paired.difference_of`):
the item-sampling noise of Δ itself. A Δ beyond ``z`` paired standard errors means the replicate's merge is
measurably another model on these items, not that the two runs drew different items. The oracle's tie band is then
the ranking's paired one (:func:`simmerge.evaluate.ranking.best_per_pair` with the items), as in
``ranking/summary.md``. The merge seeds of randomised operators are the same in both runs, so no seed variance
enters the paired errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simmerge.core.io import markdown_table
from simmerge.evaluate.paired import difference_of
from simmerge.evaluate.ranking import best_per_pair, pair_scores
from simmerge.merges.items import ITEM_KEY

LABEL_KEYS = ["a", "b", "task", "operator"]
SCORE_KEYS = ["a", "b", "operator"]
SUMMARY_COLUMNS = [
    "quantity",
    "n",
    "n_undefined",
    "mean_delta",
    "mean_abs_delta",
    "sd_delta",
    "rms_se",
    "ratio",
    "frac_outside",
    "n_paired",
    "rms_se_paired",
    "frac_outside_paired",
    "item_correlation",
]
PAIRED_COLUMNS = ["se_paired", "z_paired", "outside_paired", "item_correlation", "n_items"]
VERDICT_COLUMNS = ["difference", "difference_lo", "difference_hi", "win", "tie", "loss", "gap_closure", "top1_tied"]


@dataclass(frozen=True)
class Replication:
    """Two runs' labels compared (:func:`compare_labels`).

    Attributes
    ----------
    labels : pandas.DataFrame
        One row per (a, b, task, operator) present in both runs: ``label_a``, ``label_b``, ``se_a``, ``se_b``,
        ``delta`` (B − A), ``se_delta`` (combined), ``z`` (delta / se_delta) and ``outside`` (|z| > the z given);
        with both runs' items also :data:`PAIRED_COLUMNS` (the paired SE of Δ on the shared items, its z, whether
        |z| > the z given, the item-level correlation of the two runs' outcomes, the items behind it).
    scores : pandas.DataFrame
        The same per (a, b, operator) for the merge score (``merge_score_a``, ``merge_score_b``, ...).
    pairs : pandas.DataFrame
        One row per ordered pair: ``best_a``, ``best_b`` (the oracle operator of each run), ``changed``,
        ``tied_a``, ``tied_b`` (operators within ``tie_z`` of each run's best: paired standard errors when both
        runs' items are given), ``changed_beyond_ties`` (neither best is among the other run's tied operators)
        and ``spearman`` of the operators' merge scores.
    experts : pandas.DataFrame
        One row per (expert, task): the parent scores ``score_a``, ``score_b`` and ``delta``.
    summary : pandas.DataFrame
        One row per quantity (``label``, ``merge_score``, then ``label · <task>`` for each task):
        :data:`SUMMARY_COLUMNS`.
    n_only_a, n_only_b : int
        Label rows of one run that the other lacks (a different grid: another catalog or an unfinished run).
    z : float
        Width of the "outside the eval noise" band in combined standard errors.
    paired : bool
        Whether both runs' per-item outcomes were given (the paired columns and tie band).
    """

    labels: pd.DataFrame
    scores: pd.DataFrame
    pairs: pd.DataFrame
    experts: pd.DataFrame
    summary: pd.DataFrame
    n_only_a: int
    n_only_b: int
    z: float
    paired: bool = False


def label_stderr(labels: pd.DataFrame) -> pd.Series:
    """Standard error of each normalised label: the metric's ``stderr`` over the better parent's score.

    NaN where the label is undefined (the better parent scores 0) or the stderr is missing.
    """
    best = labels[["parent_score_a", "parent_score_b"]].max(axis=1)
    return (labels["stderr"] / best.where(best > 0)).astype("float64")


def _differences(
    a: pd.DataFrame, b: pd.DataFrame, keys: list[str], value: str, se: str, *, name: str, z: float
) -> pd.DataFrame:
    """Rows of both tables on ``keys`` with the difference of ``value`` and its combined standard error."""
    left = a[[*keys, value, se]].rename(columns={value: f"{name}_a", se: "se_a"})
    right = b[[*keys, value, se]].rename(columns={value: f"{name}_b", se: "se_b"})
    table = left.merge(right, on=keys, how="inner", validate="one_to_one")
    table["delta"] = table[f"{name}_b"] - table[f"{name}_a"]
    table["se_delta"] = np.sqrt(table["se_a"].fillna(0.0) ** 2 + table["se_b"].fillna(0.0) ** 2)
    table["z"] = _standardised(table["delta"], table["se_delta"])
    table["outside"] = table["z"].abs() > z
    return table


def _standardised(delta: pd.Series, stderr: pd.Series) -> pd.Series:
    """Δ / SE; a difference with no noise at all is outside any band (±inf) unless it is 0; NaN where either is."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = delta / stderr
    exact = np.where(delta == 0, 0.0, np.sign(delta) * np.inf)
    return ratio.where(stderr > 0, exact).where(delta.notna() & stderr.notna())


def _paired_errors(items_a: pd.DataFrame, items_b: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: the paired standard error of Δ = B − A on the items both runs scored.

    A group's Δ is the mean over tasks of the per-task mean item differences (a label is one task; a merge score
    averages the tasks that are defined in both runs), so tasks are independent and items paired within a task.
    """
    item_keys = [*LABEL_KEYS, *[key for key in ITEM_KEY if key != "task"]]
    joined = items_a[[*item_keys, "value"]].merge(
        items_b[[*item_keys, "value"]], on=item_keys, suffixes=("_a", "_b"), validate="one_to_one"
    )
    joined = joined.dropna(subset=["value_a", "value_b"])
    rows = []
    for key, group in joined.groupby(keys, sort=False):
        result = difference_of(
            group["value_b"].to_numpy(float),
            group["value_a"].to_numpy(float),
            pd.factorize(group["task"], sort=True)[0],
        )
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "se_paired": result.stderr,
                "item_correlation": result.correlation,
                "n_items": result.n,
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "se_paired", "item_correlation", "n_items"])


def _with_paired(table: pd.DataFrame, errors: pd.DataFrame, keys: list[str], z: float) -> pd.DataFrame:
    """``table`` with :data:`PAIRED_COLUMNS`; the z uses the table's own Δ (the labels' values, not the items')."""
    table = table.merge(errors, on=keys, how="left", validate="one_to_one")
    table["z_paired"] = _standardised(table["delta"], table["se_paired"])
    table["outside_paired"] = table["z_paired"].abs() > z
    return table


def _summary_row(quantity: str, table: pd.DataFrame) -> dict:
    defined = table.dropna(subset=["delta"])
    delta = defined["delta"]
    n = len(defined)
    rms_se = math.sqrt(float((defined["se_delta"] ** 2).mean())) if n else math.nan
    sd = float(delta.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and rms_se > 0:
        ratio = sd / rms_se
    else:
        ratio = 0.0 if n > 1 and sd == 0 else math.nan
    paired = defined.dropna(subset=["z_paired"]) if "z_paired" in defined else defined.iloc[:0]
    n_paired = len(paired)
    return {
        "quantity": quantity,
        "n": n,
        "n_undefined": len(table) - n,
        "mean_delta": float(delta.mean()) if n else math.nan,
        "mean_abs_delta": float(delta.abs().mean()) if n else math.nan,
        "sd_delta": sd,
        "rms_se": rms_se,
        "ratio": ratio,
        "frac_outside": float(defined["outside"].mean()) if n else math.nan,
        "n_paired": n_paired,
        "rms_se_paired": math.sqrt(float((paired["se_paired"] ** 2).mean())) if n_paired else math.nan,
        "frac_outside_paired": float(paired["outside_paired"].mean()) if n_paired else math.nan,
        "item_correlation": float(paired["item_correlation"].mean()) if n_paired else math.nan,
    }


def _spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rho (average ranks, then Pearson); NaN with fewer than two points or a constant side."""
    keep = x.notna() & y.notna()
    x, y = x[keep].rank(), y[keep].rank()
    if len(x) < 2 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _oracles(
    a: pd.DataFrame,
    b: pd.DataFrame,
    scores: pd.DataFrame,
    tie_z: float,
    items_a: pd.DataFrame | None,
    items_b: pd.DataFrame | None,
) -> pd.DataFrame:
    best_a = best_per_pair(pair_scores(a), items_a, z=tie_z).set_index(["a", "b"])
    best_b = best_per_pair(pair_scores(b), items_b, z=tie_z).set_index(["a", "b"])
    rows = []
    for (first, second), group in scores.groupby(["a", "b"], sort=False):
        key = (first, second)
        row_a = best_a.loc[key] if key in best_a.index else None
        row_b = best_b.loc[key] if key in best_b.index else None
        tied_a = row_a["tied"].split(";") if row_a is not None else []
        tied_b = row_b["tied"].split(";") if row_b is not None else []
        oracle_a = row_a["best"] if row_a is not None else None
        oracle_b = row_b["best"] if row_b is not None else None
        defined = oracle_a is not None and oracle_b is not None
        rows.append(
            {
                "a": first,
                "b": second,
                "best_a": oracle_a,
                "best_b": oracle_b,
                "changed": bool(defined and oracle_a != oracle_b),
                "tied_a": ";".join(tied_a),
                "tied_b": ";".join(tied_b),
                "changed_beyond_ties": bool(defined and oracle_b not in tied_a and oracle_a not in tied_b),
                "spearman": _spearman(group["merge_score_a"], group["merge_score_b"]),
            }
        )
    return pd.DataFrame(
        rows, columns=["a", "b", "best_a", "best_b", "changed", "tied_a", "tied_b", "changed_beyond_ties", "spearman"]
    )


def expert_scores_of(labels: pd.DataFrame) -> pd.DataFrame:
    """Each expert's score on each task, as the labels record it for the parents (``parent_score_a``/``_b``).

    Raises
    ------
    ValueError
        If the labels give one expert two different scores on a task (a results folder mixing runs).
    """
    parts = [
        labels[[side, "task", f"parent_score_{side}"]].rename(columns={side: "expert", f"parent_score_{side}": "score"})
        for side in ("a", "b")
    ]
    scores = pd.concat(parts, ignore_index=True).dropna(subset=["score"]).drop_duplicates()
    clash = scores[scores.duplicated(["expert", "task"], keep=False)]
    if len(clash):
        first = clash.iloc[0]
        raise ValueError(
            f"the labels give expert {first['expert']!r} several scores on task {first['task']!r}: "
            f"{sorted(clash[(clash.expert == first.expert) & (clash.task == first.task)]['score'])}"
        )
    return scores.reset_index(drop=True)


def compare_labels(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    items_a: pd.DataFrame | None = None,
    items_b: pd.DataFrame | None = None,
    z: float = 1.96,
    tie_z: float = 1.0,
) -> Replication:
    """Compare two runs' labels tables: per label and merge score the difference B − A against the eval noise.

    Parameters
    ----------
    a, b : pandas.DataFrame
        Labels tables (:func:`simmerge.evaluate.labels.labels_table`) of two runs of the same grid.
    items_a, items_b : pandas.DataFrame, optional
        The two runs' label items (``label_items.parquet``). With both, every Δ also gets its paired standard error
        and each run's oracle the paired tie band; with either missing, the comparison is unpaired only.
    z : float
        A difference counts as outside the eval noise when |Δ| > z · combined standard error (and, paired,
        |Δ| > z · paired standard error).
    tie_z : float
        Tie band of each run's oracle (``merges.tie_z``; :func:`simmerge.evaluate.ranking.best_per_pair`).

    Returns
    -------
    Replication
        Row tables and the summary; rows missing from one run are counted in ``n_only_a`` / ``n_only_b``.

    Examples
    --------
    >>> import pandas as pd
    >>> labels = pd.DataFrame({"a": ["x"], "b": ["y"], "task": ["t"], "operator": ["linear"], "status": ["ok"],
    ...     "stderr": [0.1], "parent_score_a": [0.5], "parent_score_b": [0.4], "normalised": [0.8],
    ...     "merge_score": [0.8], "merge_score_stderr": [0.2]})
    >>> compare_labels(labels, labels).labels["delta"].tolist()
    [0.0]
    """
    if z < 0:
        raise ValueError(f"z must be non-negative, got {z}")
    a = a.assign(label_se=label_stderr(a))
    b = b.assign(label_se=label_stderr(b))
    keys_a = pd.MultiIndex.from_frame(a[LABEL_KEYS])
    keys_b = pd.MultiIndex.from_frame(b[LABEL_KEYS])
    labels = _differences(a, b, LABEL_KEYS, "normalised", "label_se", name="label", z=z)
    scores = _differences(
        pair_scores(a), pair_scores(b), SCORE_KEYS, "merge_score", "merge_score_stderr", name="merge_score", z=z
    )
    paired = items_a is not None and items_b is not None
    if paired:
        labels = _with_paired(labels, _paired_errors(items_a, items_b, LABEL_KEYS), LABEL_KEYS, z)
        scores = _with_paired(scores, _paired_errors(items_a, items_b, SCORE_KEYS), SCORE_KEYS, z)
    else:
        items_a = items_b = None
    pairs = _oracles(a, b, scores, tie_z, items_a, items_b)
    experts = expert_scores_of(a).merge(
        expert_scores_of(b), on=["expert", "task"], how="inner", suffixes=("_a", "_b"), validate="one_to_one"
    )
    experts["delta"] = experts["score_b"] - experts["score_a"]
    by_task = [_summary_row(f"label · {task}", rows) for task, rows in labels.groupby("task", sort=True)]
    summary = pd.DataFrame(
        [_summary_row("label", labels), _summary_row("merge_score", scores), *by_task], columns=SUMMARY_COLUMNS
    )
    return Replication(
        labels=labels,
        scores=scores,
        pairs=pairs,
        experts=experts,
        summary=summary,
        n_only_a=int((~keys_a.isin(keys_b)).sum()),
        n_only_b=int((~keys_b.isin(keys_a)).sum()),
        z=z,
        paired=paired,
    )


def _verdict(low: float, high: float) -> str:
    """What an interval on SimMerge − best fixed says: better, worse, or not distinguishable."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not distinguishable"


def compare_verdicts(summary_a: pd.DataFrame, summary_b: pd.DataFrame) -> pd.DataFrame:
    """Each protocol's verdict in both runs: SimMerge − best fixed policy with its interval, and W/T/L.

    Parameters
    ----------
    summary_a, summary_b : pandas.DataFrame
        The runs' ``compare/summary.csv`` (:mod:`simmerge.evaluate.compare`), one row per protocol.

    Returns
    -------
    pandas.DataFrame
        One row per protocol in both: ``protocol``, ``title``, per run (suffix ``_a`` / ``_b``) ``difference``,
        its interval, ``win``/``tie``/``loss`` and ``verdict`` (better / worse / not distinguishable: the interval
        above 0, below 0, or across it), and ``verdict_changed``.
    """
    columns = ["protocol", "title", *VERDICT_COLUMNS]
    both = summary_a[columns].merge(
        summary_b[columns].drop(columns="title"), on="protocol", suffixes=("_a", "_b"), validate="one_to_one"
    )
    for side in ("a", "b"):
        bounds = zip(both[f"difference_lo_{side}"], both[f"difference_hi_{side}"], strict=True)
        both[f"verdict_{side}"] = [_verdict(low, high) for low, high in bounds]
    both["verdict_changed"] = both["verdict_a"] != both["verdict_b"]
    return both


def _verdicts_markdown(verdicts: pd.DataFrame) -> list[str]:
    def interval(row, side: str) -> str:
        return (
            f"{_number(row[f'difference_{side}'])} [{_number(row[f'difference_lo_{side}'])}, "
            f"{_number(row[f'difference_hi_{side}'])}]"
        )

    def record(row, side: str) -> str:
        return "/".join(str(int(row[f"{kind}_{side}"])) for kind in ("win", "tie", "loss"))

    table = pd.DataFrame(
        {
            "protocol": verdicts["title"],
            "SimMerge − best fixed, A": [interval(row, "a") for _, row in verdicts.iterrows()],
            "W/T/L A": [record(row, "a") for _, row in verdicts.iterrows()],
            "SimMerge − best fixed, B": [interval(row, "b") for _, row in verdicts.iterrows()],
            "W/T/L B": [record(row, "b") for _, row in verdicts.iterrows()],
            "verdict A": verdicts["verdict_a"],
            "verdict B": verdicts["verdict_b"],
        }
    )
    return [
        "### The comparison's verdict in each run",
        "",
        f"SimMerge − the best fixed policy (learned on the training folds) per protocol, with each run's own interval "
        f"(pairs and items resampled); the verdict changed on {int(verdicts['verdict_changed'].sum())} of "
        f"{len(verdicts)} protocols.",
        "",
        markdown_table(table, ["left", "right", "right", "right", "right", "left", "left"]),
    ]


def _number(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def summary_markdown(
    replication: Replication, *, name_a: str = "A", name_b: str = "B", verdicts: pd.DataFrame | None = None
) -> str:
    """The comparison as Markdown: the summary, the experts' score differences, the oracle of each pair, and
    (given :func:`compare_verdicts`) each protocol's verdict in both runs."""
    r = replication
    summary = pd.DataFrame(
        {
            "quantity": r.summary["quantity"],
            "n": r.summary["n"].astype(str),
            "undefined": r.summary["n_undefined"].astype(str),
            "mean Δ": r.summary["mean_delta"].map(_number),
            "mean abs Δ": r.summary["mean_abs_delta"].map(_number),
            "SD(Δ)": r.summary["sd_delta"].map(_number),
            "RMS eval SE of Δ": r.summary["rms_se"].map(_number),
            "SD(Δ) / RMS SE": r.summary["ratio"].map(lambda v: _number(v, 2)),
            f"outside {r.z:g} SE": r.summary["frac_outside"].map(_number),
        }
    )
    if r.paired:
        summary["paired SE of Δ (RMS)"] = r.summary["rms_se_paired"].map(_number)
        summary[f"outside {r.z:g} paired SE"] = r.summary["frac_outside_paired"].map(_number)
        summary["item corr. A, B"] = r.summary["item_correlation"].map(lambda v: _number(v, 2))
    experts = pd.DataFrame(
        {
            "expert": r.experts["expert"],
            "task": r.experts["task"],
            "A": r.experts["score_a"].map(_number),
            "B": r.experts["score_b"].map(_number),
            "Δ": r.experts["delta"].map(_number),
        }
    )
    pairs = pd.DataFrame(
        {
            "pair": r.pairs["a"] + "__" + r.pairs["b"],
            "oracle A": r.pairs["best_a"].fillna("–"),
            "oracle B": r.pairs["best_b"].fillna("–"),
            "changed": r.pairs["changed"].map({True: "yes", False: "no"}),
            "beyond ties": r.pairs["changed_beyond_ties"].map({True: "yes", False: "no"}),
            "Spearman": r.pairs["spearman"].map(lambda v: _number(v, 2)),
        }
    )
    n_changed = int(r.pairs["changed"].sum())
    rho = r.pairs["spearman"].dropna()
    lines = [
        f"## Replication: B − A (A = {name_a}, B = {name_b})",
        "",
        f"Rows compared: {len(r.labels)} labels ({r.n_only_a} only in A, {r.n_only_b} only in B); a label is "
        "undefined where the better parent scores 0 in either run. Eval SE of Δ: sqrt(se_A² + se_B²), unpaired "
        "(what two evaluations on independent item draws would differ by)."
        + (
            " Paired SE of Δ: from the per-item differences on the items both runs scored (the item-sampling noise "
            "of Δ itself); ties are paired too."
            if r.paired
            else " No per-item outcomes in one of the runs: unpaired only."
        ),
        "",
        markdown_table(summary, ["left", *["right"] * (len(summary.columns) - 1)]),
        "### Expert scores",
        "",
        f"Max |Δ| {_number(r.experts['delta'].abs().max())} over {len(r.experts)} (expert, task) scores.",
        "",
        markdown_table(experts, ["left", "left", "right", "right", "right"]),
        "### Oracle and operator ranking per ordered pair",
        "",
        f"Oracle changed on {n_changed} of {len(r.pairs)} pairs "
        f"({int(r.pairs['changed_beyond_ties'].sum())} beyond ties); mean Spearman "
        f"{_number(float(rho.mean()) if len(rho) else math.nan, 2)} over {len(rho)} pairs with a defined ranking.",
        "",
        markdown_table(pairs, ["left", "left", "left", "left", "left", "right"]),
    ]
    if verdicts is not None:
        lines += _verdicts_markdown(verdicts)
    return "\n".join(lines)


__all__ = [
    "Replication",
    "compare_labels",
    "compare_verdicts",
    "expert_scores_of",
    "label_stderr",
    "summary_markdown",
]
