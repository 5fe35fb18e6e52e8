"""Operator ranking per pair: best, exact ties, ties within noise, spread and win counts on hand-made labels."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simmerge.evaluate.ranking import (
    best_per_pair,
    dominant_operator,
    eval_size_factor,
    operator_wins,
    pair_scores,
    summary_blocks,
    summary_markdown,
)


def labels(rows):
    """Labels with two task rows per (pair, operator), as the labels rule writes them."""
    out = []
    for a, b, operator, score, stderr in rows:
        for task in ("t1", "t2"):
            out.append(
                {
                    "a": a,
                    "b": b,
                    "task": task,
                    "operator": operator,
                    "status": "ok",
                    "merge_score": score,
                    "merge_score_stderr": stderr,
                }
            )
    return pd.DataFrame(out)


GRID = labels(
    [
        # x,y: linear clearly best (gap 0.2 ≫ noise)
        ("x", "y", "linear", 0.9, 0.01),
        ("x", "y", "ties", 0.7, 0.01),
        ("x", "y", "slerp", 0.5, 0.01),
        # y,x: ties best by 0.02, linear within one combined SE (sqrt(0.02² + 0.02²) = 0.028)
        ("y", "x", "linear", 0.60, 0.02),
        ("y", "x", "ties", 0.62, 0.02),
        ("y", "x", "slerp", 0.10, 0.02),
        # x,z: exact tie of linear and slerp
        ("x", "z", "linear", 0.8, 0.0),
        ("x", "z", "ties", 0.3, 0.0),
        ("x", "z", "slerp", 0.8, 0.0),
    ]
)


def test_pair_scores_has_one_row_per_pair_and_operator():
    scores = pair_scores(GRID)
    assert len(scores) == 9
    assert scores.iloc[0].to_dict() == {
        "a": "x",
        "b": "y",
        "operator": "linear",
        "status": "ok",
        "merge_score": 0.9,
        "merge_score_stderr": 0.01,
        "seed_variance": 0.0,
    }


def test_best_per_pair_known_answers():
    best = best_per_pair(pair_scores(GRID), z=1.0).set_index(["a", "b"])
    xy, yx, xz = best.loc[("x", "y")], best.loc[("y", "x")], best.loc[("x", "z")]
    assert (xy["best"], xy["tied"], xy["worst"]) == ("linear", "linear", "slerp")
    assert xy["spread"] == pytest.approx(0.4) and xy["gap"] == pytest.approx(0.2)
    assert (yx["best"], yx["tied"], yx["n_tied"]) == ("ties", "ties;linear", 2)
    assert yx["gap"] == pytest.approx(0.02)
    assert yx["gap_z"] == pytest.approx(0.02 / (2 * 0.02**2) ** 0.5)
    assert xy["gap_z"] == pytest.approx(0.2 / (2 * 0.01**2) ** 0.5)
    # the exact tie's gap is to the next lower score, ties at 0.3 with zero error: infinitely many SEs
    assert xz["gap"] == pytest.approx(0.5) and xz["gap_z"] == math.inf
    # an exact tie is broken by operator order, and both count as best
    assert (xz["best"], xz["exact_best"], xz["tied"]) == ("linear", "linear;slerp", "linear;slerp")


def test_z_zero_keeps_only_exact_ties_and_z_wide_ties_everything_close():
    scores = pair_scores(GRID)
    assert best_per_pair(scores, z=0).set_index(["a", "b"]).loc[("y", "x"), "tied"] == "ties"
    assert best_per_pair(scores, z=25).set_index(["a", "b"]).loc[("y", "x"), "tied"] == "ties;linear;slerp"
    with pytest.raises(ValueError, match="non-negative"):
        best_per_pair(scores, z=-1)


def test_pair_without_a_score_is_left_out_and_single_score_has_no_gap():
    rows = labels([("p", "q", "linear", None, None), ("p", "r", "linear", 0.5, 0.1)])
    best = best_per_pair(pair_scores(rows))
    assert list(zip(best["a"], best["b"], strict=True)) == [("p", "r")]
    assert math.isnan(best["gap"].iloc[0])


def test_operator_wins_counts_exact_ties_for_each_and_noise_ties_separately():
    best = best_per_pair(pair_scores(GRID), z=1.0)
    wins = operator_wins(best, ["linear", "ties", "slerp", "della"]).set_index("operator")
    assert wins["best"].to_dict() == {"linear": 2, "ties": 1, "slerp": 1, "della": 0}
    assert wins["within_noise"].to_dict() == {"linear": 3, "ties": 1, "slerp": 1, "della": 0}
    assert wins.loc["linear", "best_share"] == pytest.approx(2 / 3)
    assert dominant_operator(wins.reset_index()) is None
    assert dominant_operator(wins.reset_index(), threshold=0.6) == "linear"


def test_eval_size_factor_scales_with_the_inverse_square_of_the_median_gap():
    best = pd.DataFrame({"gap_z": [0.5, 1.0, 2.0, math.inf]})
    assert eval_size_factor(best, z=1.0) == pytest.approx(1.0)  # median of 0.5, 1, 2
    assert eval_size_factor(pd.DataFrame({"gap_z": [0.5]}), z=1.0) == pytest.approx(4.0)
    assert eval_size_factor(pd.DataFrame({"gap_z": [math.nan]})) is None


def test_summary_markdown_lists_every_operator_and_pair():
    best = best_per_pair(pair_scores(GRID))
    text = summary_markdown(best, operator_wins(best, ["linear", "ties", "slerp"]), z=1.0)
    assert "| linear | 2 | 67% | 3 | 100% |" in text
    assert "| x, z | linear = slerp | 0.800 | ties | 0.300 | 0.500 | 0.500 | linear, slerp |" in text
    assert "No operator is best on 70% or more of the pairs." in text


def test_summary_blocks_are_the_markdown_paragraphs_and_tables_in_order():
    best = best_per_pair(pair_scores(GRID))
    wins = operator_wins(best, ["linear", "ties", "slerp"])
    blocks = summary_blocks(best, wins, z=1.0)
    intro, win_cells, pair_cells, notes, closing = blocks
    assert intro.startswith("Ordered pairs: 3.") and closing == "No operator is best on 70% or more of the pairs."
    spread, resolution = notes.splitlines()  # spreads 0.4, 0.52, 0.5; one paragraph of two sentences
    assert spread == "Spread (best − worst): median 0.500, range 0.400–0.520. Operators tied with the best: median 2."
    assert resolution.startswith("The best beats the runner-up by more than 1 combined standard error(s) on 2 of 3")
    assert win_cells.iloc[0].tolist() == ["linear", "2", "67%", "3", "100%"]
    assert pair_cells.iloc[2].tolist() == [
        "x, z",
        "linear = slerp",
        "0.800",
        "ties",
        "0.300",
        "0.500",
        "0.500",
        "linear, slerp",
    ]
    # the Markdown file is these blocks, tables as pipe tables, one blank line apart
    text = summary_markdown(best, wins, z=1.0)
    assert text.split("\n\n")[0] == intro and text.split("\n\n")[3] == notes and text.endswith(closing + "\n")
    assert text.split("\n\n")[1].splitlines()[:2] == [
        "| operator | best on | share | within noise of best | share |",
        "|---|---:|---:|---:|---:|",
    ]


def item_labels(values_by_operator, pair=("x", "y")):
    """Labels and label items of one pair from per-item values on one task (binary outcomes, 100 items)."""
    rows, items = [], []
    for operator, values in values_by_operator.items():
        values = pd.Series(values, dtype=float)
        stderr = float(values.std(ddof=1) / math.sqrt(len(values)))
        rows.append(
            {
                "a": pair[0],
                "b": pair[1],
                "task": "t1",
                "operator": operator,
                "status": "ok",
                "merge_score": values.mean(),
                "merge_score_stderr": stderr,
            }
        )
        items.append(
            pd.DataFrame(
                {
                    "a": pair[0],
                    "b": pair[1],
                    "task": "t1",
                    "operator": operator,
                    "subtask": "t1",
                    "doc_id": range(len(values)),
                    "value": values,
                }
            )
        )
    return pd.DataFrame(rows), pd.concat(items, ignore_index=True)


def test_two_operators_that_differ_on_few_items_separate_only_when_paired():
    base = [1.0] * 50 + [0.0] * 50
    better = base.copy()
    for i in range(50, 56):  # six more items right, nothing lost: a 0.06 gap
        better[i] = 1.0
    table, items = item_labels({"better": better, "base": base})
    unpaired = best_per_pair(pair_scores(table), z=1.0).iloc[0]
    paired = best_per_pair(pair_scores(table), items, z=1.0).iloc[0]
    # unpaired SE ≈ sqrt(0.050² + 0.050²) = 0.071 > 0.06: tied; paired SE sqrt(0.06 · 0.94 / 99) = 0.024: separated
    assert unpaired["tied"] == "better;base" and not unpaired["paired"]
    assert paired["tied"] == "better" and paired["paired"] and paired["n_tied_unpaired"] == 2
    assert paired["gap_z"] == pytest.approx(0.06 / math.sqrt(pd.Series([1] * 6 + [0] * 94).var() / 100))
    assert paired["gap_z_unpaired"] == pytest.approx(unpaired["gap_z"])
    assert 0.8 < paired["correlation"] < 1
    assert paired["mcnemar_p"] == pytest.approx(2 / 2**6)  # six discordant items, all one way


def test_identical_merges_are_tied_exactly_under_the_paired_rule():
    same = [1.0, 0.0] * 50
    table, items = item_labels({"one": same, "other": same})
    row = best_per_pair(pair_scores(table), items, z=0.0).iloc[0]
    assert row["tied"] == "one;other" and math.isnan(row["gap"])


def test_the_summary_reports_paired_against_unpaired_separation():
    base = [1.0] * 50 + [0.0] * 50
    table, items = item_labels({"better": [1.0] * 56 + [0.0] * 44, "base": base})
    best = best_per_pair(pair_scores(table), items, z=1.0)
    text = summary_markdown(best, operator_wins(best, ["better", "base"]), z=1.0)
    assert "on 1 (paired) vs 0 (unpaired) of 1 pairs" in text
