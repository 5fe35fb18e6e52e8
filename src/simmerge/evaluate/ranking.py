"""Rank the operators of each ordered pair from the labels: the best, the ones tied with it within noise, the spread.

A label is a mean over 60–150 scored items (and over seeds for a randomised operator), so the best operator of
a pair often beats the second by less than its standard error. :func:`best_per_pair` therefore reports, next to
the strict best, the set of operators whose score is within ``z`` standard errors of the best one; top-1
accuracy and the oracle treat every member of that set as a correct choice. With the per-item outcomes of the
labels, the standard error is that of the paired difference on the same items (:mod:`simmerge.evaluate.paired`);
the unpaired rule (the two scores' errors combined as if independent) is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from simmerge.core.io import markdown_table
from simmerge.evaluate.paired import label_mcnemar, label_seed_variance, paired_difference
from simmerge.evaluate.stats import combined_stderr, within_noise

PAIR_KEYS = ["a", "b"]


def pair_scores(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per (ordered pair, operator): the merge's mean normalised score and its standard error.

    Parameters
    ----------
    labels : pandas.DataFrame
        The labels table (:func:`simmerge.evaluate.labels.labels_table`): one row per (a, b, task, operator).

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b``, ``operator``, ``status``, ``merge_score``, ``merge_score_stderr`` and
        ``seed_variance`` (what a randomised operator's seed spread adds to the variance of its mean), in the
        labels' row order.
    """
    columns = [*PAIR_KEYS, "operator", "status", "merge_score", "merge_score_stderr"]
    seeds = label_seed_variance(labels, keys=[*PAIR_KEYS, "operator"])
    scores = labels[columns].drop_duplicates([*PAIR_KEYS, "operator"])
    return scores.merge(seeds, on=[*PAIR_KEYS, "operator"], how="left").reset_index(drop=True)


def best_per_pair(scores: pd.DataFrame, items: pd.DataFrame | None = None, *, z: float = 1.0) -> pd.DataFrame:
    """The best operator of each ordered pair, the operators tied with it within noise, and the spread.

    Operator ``o`` is tied with the best ``*`` when ``score* − score_o ≤ z · se`` (:func:`simmerge.evaluate.stats.
    within_noise`), ``se`` the paired standard error of the difference on the same items when ``items`` are
    given (plus both operators' seed variance), else the unpaired ``sqrt(se*² + se_o²)``.

    Parameters
    ----------
    scores : pandas.DataFrame
        :func:`pair_scores`.
    items : pandas.DataFrame, optional
        The label items (:func:`simmerge.evaluate.labels.labels_table`): per (a, b, task, operator) and item, the
        normalised ``value``.
    z : float
        Width of the tie band in standard errors.

    Returns
    -------
    pandas.DataFrame
        One row per ordered pair: ``a``, ``b``, ``best`` (highest score; exact ties broken by operator order in
        ``scores``), ``best_score``, ``exact_best`` (every operator with exactly the best score, ``;``-joined),
        ``tied`` (operators within noise of the best, best first), ``n_tied``, ``worst``, ``worst_score``,
        ``spread`` (best − worst), ``gap`` (best − the best lower score; NaN with one distinct score),
        ``gap_z`` (the gap in standard errors of the difference, paired when ``items`` are given),
        ``gap_z_unpaired`` (in combined unpaired standard errors), ``correlation`` (item-level correlation of
        the best and the runner-up; NaN without items), ``n_tied_unpaired`` (operators tied under the unpaired
        rule), ``mcnemar_p`` (McNemar's exact p of best vs runner-up where it fits: one task, 0/1 items; else NaN)
        and ``paired`` (whether the items were used). Pairs without a defined score are left out.
    """
    if z < 0:
        raise ValueError(f"z must be non-negative, got {z}")
    rows = []
    order = {name: index for index, name in enumerate(dict.fromkeys(scores["operator"]))}
    by_label = dict(tuple(items.groupby([*PAIR_KEYS, "operator"], sort=False))) if items is not None else {}
    for (a, b), group in scores.groupby(PAIR_KEYS, sort=False):
        group = group.dropna(subset=["merge_score"])
        if group.empty:
            continue
        group = group.assign(rank=group["operator"].map(order)).sort_values(
            ["merge_score", "rank"], ascending=[False, True]
        )
        best = group.iloc[0]
        paired = items is not None and all((a, b, op) in by_label for op in group["operator"])

        def versus_best(row, best=best, a=a, b=b, paired=paired) -> tuple[float, float, float]:
            """(paired or unpaired SE, unpaired SE, correlation) of best − row."""
            unpaired = combined_stderr(best["merge_score_stderr"], row["merge_score_stderr"])
            if not paired:
                return unpaired, unpaired, math.nan
            extra = float(best.get("seed_variance", 0.0) or 0.0) + float(row.get("seed_variance", 0.0) or 0.0)
            result = paired_difference(
                by_label[(a, b, best["operator"])], by_label[(a, b, row["operator"])], extra_variance=extra
            )
            return result.stderr, unpaired, result.correlation

        errors = {row["operator"]: versus_best(row) for _, row in group.iterrows()}
        difference = best["merge_score"] - group["merge_score"]
        tied = [
            op for op, d in zip(group["operator"], difference, strict=True) if within_noise(d, errors[op][0], None, z=z)
        ]
        tied_unpaired = [
            op for op, d in zip(group["operator"], difference, strict=True) if within_noise(d, errors[op][1], None, z=z)
        ]
        exact = [row.operator for row in group.itertuples() if row.merge_score == best["merge_score"]]
        runner_up = group[group["merge_score"] < best["merge_score"]].head(1)
        mcnemar_p = math.nan
        if len(runner_up):
            gap = float(best["merge_score"] - runner_up["merge_score"].iloc[0])
            gap_se, gap_se_unpaired, correlation = errors[runner_up["operator"].iloc[0]]
            if paired:
                test = label_mcnemar(
                    by_label[(a, b, best["operator"])], by_label[(a, b, runner_up["operator"].iloc[0])]
                )
                mcnemar_p = test.p_value if test is not None else math.nan
        else:
            gap, gap_se, gap_se_unpaired, correlation = math.nan, math.nan, math.nan, math.nan
        worst = group.iloc[-1]
        rows.append(
            {
                "a": a,
                "b": b,
                "best": best["operator"],
                "best_score": float(best["merge_score"]),
                "exact_best": ";".join(exact),
                "tied": ";".join(tied),
                "n_tied": len(tied),
                "worst": worst["operator"],
                "worst_score": float(worst["merge_score"]),
                "spread": float(best["merge_score"] - worst["merge_score"]),
                "gap": gap,
                "gap_z": _z(gap, gap_se),
                "gap_z_unpaired": _z(gap, gap_se_unpaired),
                "correlation": correlation,
                "n_tied_unpaired": len(tied_unpaired),
                "mcnemar_p": mcnemar_p,
                "paired": paired,
            }
        )
    return pd.DataFrame(rows)


def _z(gap: float, stderr: float) -> float:
    """A gap in standard errors: inf for a gap without error, NaN without a gap."""
    if math.isnan(gap):
        return math.nan
    return gap / stderr if stderr > 0 else math.inf if gap > 0 else math.nan


def operator_wins(best: pd.DataFrame, operators: Sequence[str]) -> pd.DataFrame:
    """How often each operator is best: strictly or in an exact tie, and within noise of the best.

    Parameters
    ----------
    best : pandas.DataFrame
        :func:`best_per_pair`.
    operators : sequence of str
        Every operator of the grid, in config order (operators that never win get zero rows).

    Returns
    -------
    pandas.DataFrame
        ``operator``, ``best`` (pairs where it has the highest score, exact ties counted for each),
        ``best_share`` (of all pairs), ``within_noise`` (pairs where it is tied with the best within noise)
        and ``within_noise_share``.
    """
    n_pairs = len(best)
    exact = best["exact_best"].str.split(";").explode().value_counts() if n_pairs else pd.Series(dtype=int)
    tied = best["tied"].str.split(";").explode().value_counts() if n_pairs else pd.Series(dtype=int)
    rows = []
    for name in operators:
        wins, near = int(exact.get(name, 0)), int(tied.get(name, 0))
        rows.append(
            {
                "operator": name,
                "best": wins,
                "best_share": wins / n_pairs if n_pairs else math.nan,
                "within_noise": near,
                "within_noise_share": near / n_pairs if n_pairs else math.nan,
            }
        )
    return pd.DataFrame(rows)


def eval_size_factor(best: pd.DataFrame, *, z: float = 1.0, column: str = "gap_z") -> float | None:
    """How many times the current eval items the median pair needs for its best to clear ``z`` SEs over the next.

    Standard errors shrink as 1/√n, so a gap of ``g`` standard errors becomes ``z`` of them with
    ``(z / g)²`` times the items. None when no pair has a runner-up. ``column``: ``gap_z`` (the paired rule when
    the ranking had items) or ``gap_z_unpaired``.
    """
    gaps = best[column].replace(math.inf, math.nan).dropna()
    if gaps.empty:
        return None
    median = float(gaps.median())
    return (z / median) ** 2 if median > 0 else math.inf


def dominant_operator(wins: pd.DataFrame, threshold: float = 0.7) -> str | None:
    """The operator that is best on at least ``threshold`` of the pairs, if any: selection is moot there."""
    top = wins.sort_values("best_share", ascending=False).iloc[0] if len(wins) else None
    return top["operator"] if top is not None and top["best_share"] >= threshold else None


def summary_blocks(
    best: pd.DataFrame, wins: pd.DataFrame, *, z: float, seed_note: str | None = None
) -> list[str | pd.DataFrame]:
    """The ranking summary in reading order: paragraphs (str) and tables (DataFrames of text cells).

    :func:`summary_markdown` writes them as ``ranking/summary.md``; the report renders the same blocks as HTML.

    Parameters
    ----------
    best : pandas.DataFrame
        :func:`best_per_pair`.
    wins : pandas.DataFrame
        :func:`operator_wins`.
    z : float
        The tie band ``best`` was computed with.
    seed_note : str, optional
        How the labels count seed noise (:func:`simmerge.evaluate.labels.seed_noise_note`), after the notes.
    """
    wins_cells = pd.DataFrame(
        [
            [
                row.operator,
                str(row.best),
                f"{row.best_share:.0%}",
                str(row.within_noise),
                f"{row.within_noise_share:.0%}",
            ]
            for row in wins.itertuples()
        ],
        columns=["operator", "best on", "share", "within noise of best", "share"],
    )
    pair_cells = pd.DataFrame(
        [
            [
                f"{row.a}, {row.b}",
                row.exact_best.replace(";", " = "),
                f"{row.best_score:.3f}",
                row.worst,
                f"{row.worst_score:.3f}",
                f"{row.spread:.3f}",
                "–" if math.isnan(row.gap) else f"{row.gap:.3f}",
                row.tied.replace(";", ", "),
            ]
            for row in best.itertuples()
        ],
        columns=["pair (a, b)", "best", "score", "worst", "score", "spread", "gap to 2nd", "tied within noise"],
    )
    blocks: list[str | pd.DataFrame] = [
        f"Ordered pairs: {len(best)}. 'within noise': score within {z:g} standard error(s) of the difference "
        "from the best" + (" (paired on the same items)." if len(best) and best["paired"].all() else " (unpaired)."),
        wins_cells,
        pair_cells,
    ]
    if len(best):
        notes = [
            f"Spread (best − worst): median {best['spread'].median():.3f}, "
            f"range {best['spread'].min():.3f}–{best['spread'].max():.3f}. "
            f"Operators tied with the best: median {best['n_tied'].median():g}."
        ]
        paired = bool(best["paired"].all())
        rule = "paired standard error(s) of the difference" if paired else "combined standard error(s)"
        resolution = eval_size_factor(best, z=z)
        if resolution is not None:
            separated = int((best["gap_z"] > z).sum())
            notes.append(
                f"The best beats the runner-up by more than {z:g} {rule} on {separated} of "
                f"{len(best)} pairs (median gap {best['gap'].median():.3f} = {best['gap_z'].median():.2f} SE). "
                f"Separating the median pair at that level needs about {resolution:.1f}× the current eval items "
                "(standard errors shrink as 1/√n)."
            )
        if paired and resolution is not None:
            unpaired = eval_size_factor(best, z=z, column="gap_z_unpaired")
            notes.append(
                "Paired against unpaired: the best separates from the runner-up on "
                f"{int((best['gap_z'] > z).sum())} (paired) vs {int((best['gap_z_unpaired'] > z).sum())} (unpaired) "
                f"of {len(best)} pairs; operators tied with the best, median {best['n_tied'].median():g} (paired) "
                f"vs {best['n_tied_unpaired'].median():g} (unpaired); item-level correlation of the best and the "
                f"runner-up, median {best['correlation'].median():.2f}; the median pair needs "
                f"{resolution:.1f}× (paired) vs {unpaired:.1f}× (unpaired) the eval items to separate."
            )
        blocks.append("\n".join(notes))
    if seed_note:
        blocks.append(seed_note)
    dominant = dominant_operator(wins)
    blocks.append(
        f"Dominant operator (best on ≥ 70% of pairs): {dominant}."
        if dominant
        else "No operator is best on 70% or more of the pairs."
    )
    return blocks


def summary_markdown(best: pd.DataFrame, wins: pd.DataFrame, *, z: float, seed_note: str | None = None) -> str:
    """``ranking/summary.md``: :func:`summary_blocks` as Markdown (names left-aligned, numbers right-aligned)."""
    parts = [
        block
        if isinstance(block, str)
        else markdown_table(block, ["left" if column in _TEXT_COLUMNS else "right" for column in block.columns])
        for block in summary_blocks(best, wins, z=z, seed_note=seed_note)
    ]
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


# Columns of the summary tables that hold names rather than numbers.
_TEXT_COLUMNS = {"operator", "pair (a, b)", "best", "worst", "tied within noise"}


__all__ = [
    "best_per_pair",
    "dominant_operator",
    "eval_size_factor",
    "operator_wins",
    "pair_scores",
    "summary_blocks",
    "summary_markdown",
]
