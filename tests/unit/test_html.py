"""Tests of simmerge.report.html: the report shows every section, and the numbers of the results it is given."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from label_rows import label_rows

from simmerge.core.provenance import mixed_provenance, provenance
from simmerge.evaluate.selection import candidate_table, combine_folds, evaluate_units, rule_anchors
from simmerge.report.html import build_report

SCORES = {"a|b": {"linear": 0.9, "ties": 0.5}, "a|c": {"linear": 0.8, "ties": 0.6}, "b|c": {"linear": 0.4, "ties": 0.7}}
OPERATORS = [
    {"name": "linear", "method": "linear", "order_sensitive": False, "randomised": False, "model_parameters": {"w": 1}},
    {"name": "ties", "method": "ties", "order_sensitive": False, "randomised": False, "parameters": {"k": 2}},
]
# one clean checkout of one commit on this machine
CLEAN = {**provenance(), "commit": "0" * 40, "dirty": False}
SECTIONS = [
    "<h2>What was run</h2>",
    "<h3>Expert scores (primary metric; home tasks in bold)</h3>",
    "<h3>Operators</h3>",
    "<h3>Provenance</h3>",
    "<h2>Which operator wins where</h2>",
    "<h2>SimMerge against fixed policies, the oracle and random choice</h2>",
    "<h3>Where the gain comes from</h3>",
    "<h3>Fixed policies (mean score over the tested units)</h3>",
    "<h3>Model families (nested)</h3>",
    "<h3>Choices per pair (new checkpoint)</h3>",
    "<h2>Feature importances on held-out rows</h2>",
    "<h2>Cost: SimMerge against merge-and-evaluate</h2>",
    "<h3>Counting the labels that trained the predictor</h3>",
    "<h2>Selection methods at a counted budget</h2>",
    "<h3>Every approach on the same axes (per decision)</h3>",
    "<h2>Transfer from results/other</h2>",
    "<h2>Multi-way merges</h2>",
    "<h2>Online: the contextual bandit</h2>",
]


def summary(protocol: str, **values: float) -> dict:
    """A comparison summary whose every mean is ``value [value − 0.1, value + 0.1]`` unless given."""
    base = {"simmerge": 0.812, "best_fixed": 0.7, "oracle": 0.9, "random": 0.65, "gap_closure": 0.56}
    base |= {"regret": 0.088, "top1": 0.5, "top1_tied": 0.75, "difference": 0.112, "spearman": 0.4}
    base |= {"operator_gain": 0.1, "order_gain": 0.012, "best_fixed_hindsight": 0.75, "hindsight_difference": 0.062}
    out = {"protocol": protocol, "units": 6.0, "clusters": 3.0, "win": 3.0, "tie": 2.0, "loss": 1.0}
    out |= {"top1_chance": 0.33, "top1_tied_chance": 0.41, "gap_closure_nan_draws": 12.0, "groups": ["a+b"]}
    for name, value in {**base, **values}.items():
        out |= {name: value, f"{name}_lo": value - 0.1, f"{name}_hi": value + 0.1}
    families = [
        {"family": "ridge", "simmerge": 0.8, "difference": 0.1, "top1": 0.5, "spearman": 0.3},
        {"family": "chosen per fold by inner CV (nested)", "simmerge": 0.812, "difference": 0.112, "top1": 0.5},
    ]
    policies = {"linear": 0.7, "ties": 0.6, "slerp/better_parent": 0.68}
    return out | {"fixed_policies": policies, "best_fixed_hindsight_policy": "linear", "families": families}


def replay() -> pd.DataFrame:
    """Two policies over three rounds and two seeds, as simmerge.online.bandit.replay returns them."""
    rows = []
    for seed in (0, 1):
        for policy, regret in (("bandit", 0.1), ("random", 0.3)):
            for round_ in range(3):
                rows.append(
                    {
                        "seed": seed,
                        "policy": policy,
                        "round": round_,
                        "reward": 1.0 - regret,
                        "regret": regret,
                        "cumulative_regret": regret * (round_ + 1),
                    }
                )
    return pd.DataFrame(rows)


def methods() -> pd.DataFrame:
    """A methods table as simmerge.evaluate.methods.methods_summary writes it: SimMerge, a search at two budgets,
    the label-free choice and the oracle."""
    frame = pd.DataFrame(
        {
            "method": ["simmerge", "sh (budget=0.5)", "sh (budget=1.0)", "label_free", "oracle"],
            "name": ["simmerge", "successive_halving", "successive_halving", "label_free", "oracle"],
            "pairs": [10] * 5,
            "bound": [False, False, False, False, True],
            "reads_features": [True, False, False, False, False],
            "score": [0.90, 0.88, 0.93, 0.85, 0.97],
            "merges": [1.0, 13.0, 13.0, 13.0, 1.0],
            "items": [0.0, 900.0, 1500.0, 0.0, 0.0],
            "probe_passes": [0.0, 0.0, 0.0, 26.0, 0.0],
        }
    )
    return frame.assign(score_lo=frame["score"] - 0.05, score_hi=frame["score"] + 0.03)


def report(**changes) -> str:
    from test_compare import labels as synthetic_labels
    from test_transfer import TARGET_EXPERTS, fitted

    from simmerge.evaluate.costs import method_budgets
    from simmerge.evaluate.transfer import transfer

    rows = label_rows(SCORES).assign(status="ok")
    source = synthetic_labels(0)
    candidates = candidate_table(rows.assign(predicted=rows["merge_score"]))
    units = evaluate_units(candidates, rule_anchors(rows), "linear")
    units = combine_folds(units.assign(fold=[unit.split("|")[0] for unit in units["unit"]], family="ridge"))
    inputs = {
        "title": "SimMerge <smoke> & co",
        "run_facts": {"catalog": "3 experts", "seed": 7},
        "expert_scores": pd.DataFrame({"checkpoint": ["base", "x"], "home_tasks": ["", "t1"], "t1": [0.1, 0.5]}),
        "operators": OPERATORS,
        "labels": rows,
        "label_items": None,
        "tie_z": 1.0,
        "summaries": [summary("checkpoint"), summary("task_seen_pairs", simmerge=0.731, gap_closure=math.nan)],
        "units": units,
        "candidates": candidates,
        "cv": {"family": "ridge", "rows": 12, "families": [{"family": "ridge", "selected_score": 0.8, "rmse": 0.1}]},
        "importances": pd.DataFrame(
            {"input": ["signal", "operator"], "importance": [0.5, 0.1], "sd_over_folds": [0.01, 0.02], "folds": [3, 3]}
        ),
        "costs": pd.DataFrame(
            {
                "pair": ["a|b", "a|c"],
                "chosen": ["ties", None],
                "summaries_s": [4.0, 4.0],
                "pair_features_s": [2.0, 2.0],
                "predict_s": [1.0, 1.0],
                "chosen_merge_s": [3.0, 13.0],
                "simmerge_s": [10.0, 20.0],
                "merge_evaluate_s": [300.0, 300.0],
                "ratio": [30, 15],
            }
        ),
        "break_even": {
            "merge_grid_s": 900.0,
            "summaries_s": 16.0,
            "pair_features_s": 12.0,
            "fit_s": 3.0,
            "labels_s": 931.0,
            "marginal_s": 15.0,
            "grid_s": 300.0,
            "break_even": 931.0 / 285.0,
        },
        "multiway": pd.DataFrame(
            {
                "set": ["trio", "trio"],
                "approach": ["simmerge", "best_expert"],
                "model": ["ties(a, b)", "a"],
                "size": [2, 1],
                "target_score": [0.93, 0.88],
            }
        ),
        "bandit": replay(),
        "arrivals": [{"at": 0.5, "checkpoints": ["c"], "tasks": [], "operators": ["ties"]}],
        "provenance": mixed_provenance({"merges/a__b/linear.json": {"provenance": CLEAN}}),
        "methods": methods(),
        "transfers": [
            {
                "source_run": "results/other",
                "features": "dimensionless",
                **transfer(fitted(source), source, synthetic_labels(1, experts=TARGET_EXPERTS), n_boot=50)[1],
            }
        ],
    }
    inputs["budgets"] = method_budgets(
        inputs["methods"], inputs["costs"], {"merge_s": 20.0, "item_s": 0.1, "probe_s": 1.0}
    )
    # pandas writes each cell on a line of its own: compare the markup without the whitespace between tags
    return re.sub(r">\s+<", "><", build_report(**{**inputs, **changes}))


@pytest.fixture(scope="module")
def page() -> str:
    return report()


def test_every_section_is_there_in_reading_order(page):
    positions = [page.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")


def test_the_comparison_table_shows_each_protocols_summary_with_its_interval(page):
    for title in ("new checkpoint (held-out checkpoint groups)", "new task for already-merged pairs"):
        assert f"<td>{title}</td><td>6 (3)</td>" in page  # units, and the pairs they cluster in
    # SimMerge, best fixed, their paired difference, oracle, random, gap closure with its undefined draws
    row = ["0.812 [0.712, 0.912]", "0.700 [0.600, 0.800]", "0.112 [0.012, 0.212]", "0.900 [0.800, 1.000]"]
    row += ["0.650 [0.550, 0.750]", "0.560 [0.460, 0.660] (12 draws undefined)"]
    assert "".join(f"<td>{cell}</td>" for cell in row) in page
    # top-1 strict and within noise with their chance levels, regret, Spearman, win/tie/loss
    row = ["0.500 [0.400, 0.600] (0.33)", "0.750 [0.650, 0.850] (0.41)", "0.088 [-0.012, 0.188]"]
    row += ["0.400 [0.300, 0.500]", "3/2/1"]
    assert "".join(f"<td>{cell}</td>" for cell in row) in page
    # a new task for already-merged pairs: its SimMerge, then its undefined gap closure
    assert (
        "<td>0.731 [0.631, 0.831]</td>" in page
        and "<td>0.650 [0.550, 0.750]</td><td>– (12 draws undefined)</td>" in page
    )
    assert "hold-out groups: a+b)" in page


def test_the_gain_is_split_and_policies_and_families_are_listed(page):
    row = ["0.100 [0.000, 0.200]", "0.012 [-0.088, 0.112]", "linear", "0.750 [0.650, 0.850]"]
    assert "".join(f"<td>{cell}</td>" for cell in row) in page
    assert "<td>slerp/better_parent</td><td>0.680</td><td>0.680</td>" in page  # a fixed policy, per protocol
    assert "<td>chosen per fold by inner CV (nested)</td><td>0.812</td>" in page


def test_the_run_its_operators_and_the_choices_per_pair_are_listed(page):
    assert "<title>SimMerge &lt;smoke&gt; &amp; co</title>" in page and "<smoke>" not in page
    assert "<tr><th>catalog</th><td>3 experts</td></tr><tr><th>seed</th><td>7</td></tr>" in page
    assert "<td>x</td><td><b>0.500</b></td>" in page and "**" not in page  # the home task in bold
    # the ranking, recomputed from the labels: linear is best on the 4 ordered pairs of a|b and a|c, ties on b|c's 2
    assert "<p>Ordered pairs: 6. " in page
    assert "<tr><td>linear</td><td>4</td><td>67%</td>" in page and "<tr><td>ties</td><td>2</td><td>33%</td>" in page
    parameters = str({"parameters": {"k": 2}})
    assert f"<td>ties</td><td>ties</td><td>False</td><td>False</td><td>{parameters}</td>" in page
    assert "<td>b|c</td><td>b</td><td>ties</td><td>0.700</td><td>linear</td><td>0.400</td><td>ties</td>" in page
    assert "The deployed predictor's family: <b>ridge</b> (fitted on 12 label rows)" in page


def test_importances_costs_multiway_and_bandit_are_reported(page):
    assert "<td>signal</td><td>0.500</td><td>0.010</td><td>3</td>" in page
    # pair, chosen, summaries, pair features, prediction, chosen merge, SimMerge, merge-and-evaluate
    cells = ["a|b", "ties", "4.0", "2.0", "1.0", "3.0", "10.0", "300.0"]
    assert "".join(f"<td>{cell}</td>" for cell in cells) in page
    assert "<td>a|c</td><td>–</td>" in page  # a pair no fold tested
    assert "the base&#x27;s summary, which every pair&#x27;s features read" in page
    assert "All pairs: SimMerge 30 s, merge-and-evaluate 600 s (merge-and-evaluate ÷ SimMerge: 20.0)." in page
    assert "The labels cost 931 s: the labelled catalog&#x27;s whole merge grid (900 s)" in page
    assert "k* = 931 ÷ (300.0 − 15.0) = 3.3: from decision 4 on." in page
    assert "<td>trio</td><td>simmerge</td><td>ties(a, b)</td><td>2</td><td>0.930</td>" in page
    assert "Arrivals: at 50%: c, ties." in page
    # final cumulative regret per policy, mean over the seeds
    assert re.search(r"<td>bandit</td><td>0\.300</td>", page) and re.search(r"<td>random</td><td>0\.900</td>", page)


def test_no_break_even_is_claimed_when_a_decision_costs_simmerge_as_much_as_the_grid():
    totals = {"merge_grid_s": 90.0, "summaries_s": 50.0, "pair_features_s": 6.0, "fit_s": 3.0, "labels_s": 149.0}
    page = report(break_even={**totals, "marginal_s": 40.0, "grid_s": 30.0, "break_even": None})
    assert "SimMerge never pays the labels back: a decision costs it no less than merge-and-evaluate." in page
    assert "k*" not in page


def test_the_selection_methods_are_plotted_priced_and_transfers_listed(page):
    assert 'alt="held-out score against items per pair"' in page
    # priced per decision: 13 merges x 20 s + 900 items x 0.1 s for the search; 13 merges and 26 probe passes x 1 s
    assert (
        "<td>sh (budget=0.5)</td><td>13.0</td><td>900.0</td><td>0.0</td><td>0.0</td><td>260.0</td><td>90.0</td>" in page
    )
    assert (
        "<td>label_free</td><td>13.0</td><td>0.0</td><td>26.0</td><td>0.0</td><td>260.0</td><td>0.0</td><td>26.0</td>"
        in page
    )
    assert "fitted again on its labels without the KL features in nats" in page
    assert "<td>best fixed policy of the source run</td>" in page


def test_the_page_is_self_contained(page):
    images = re.findall(r'<img alt="([^"]*)" src="([^"]*)">', page)
    assert [alt for alt, _ in images] == [
        "operator heatmap",
        "gap closure",
        "predicted vs actual",
        "chosen vs oracle",
        "held-out score against items per pair",
        "multi-way target scores",
        "cumulative regret",
    ]
    assert all(src.startswith("data:image/png;base64,") for _, src in images)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_one_provenance_is_one_line_without_warning(page):
    assert "1 record(s) share one provenance and cite the current weights of their checkpoints.</p>" in page
    assert "<td>simmerge " in page and "at 000000000000;" in page and "Warning" not in page


def test_mixed_provenance_and_a_stale_merge_are_shown_as_warnings():
    records = {
        "merges/a__b/linear.json": {"provenance": CLEAN, "checkpoints_sha256": {"a": "1" * 64}},
        "merges/a__b/ties.json": {"provenance": {**CLEAN, "commit": "2" * 40}},
        "scores/experts/a/t1.json": {},
    }
    page = report(provenance=mixed_provenance(records, {}))
    assert page.count("<b>Warning:</b>") == 3  # no provenance, two commits, a stale record
    assert "records mix 2 code versions (commit: 000000000000 vs 222222222222)" in page
    assert "<td>unknown (written before provenance was recorded)</td><td>1</td>" in page
    assert "<td>merges/a__b/linear.json</td><td>a</td><td>111111111111</td><td>no manifest</td>" in page


def test_optional_sections_are_left_out_without_their_results():
    page = report(
        multiway=None,
        bandit=None,
        arrivals=(),
        units=pd.DataFrame(),
        candidates=pd.DataFrame(),
        provenance=None,
        methods=None,
        budgets=None,
        transfers=(),
    )
    for absent in ("<h2>Multi-way merges</h2>", "<h2>Online: the contextual bandit</h2>", "Choices per pair"):
        assert absent not in page
    assert "Selection methods" not in page and "<h2>Transfer from" not in page
    assert 'alt="predicted vs actual"' not in page and 'alt="chosen vs oracle"' not in page
    assert "<h3>Provenance</h3>" not in page
    assert "<h2>Cost: SimMerge against merge-and-evaluate</h2>" in page
