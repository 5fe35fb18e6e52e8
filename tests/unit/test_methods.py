"""simmerge.evaluate.methods: every selection method through one interface on a synthetic run whose winner is
known (linear where the pair's ``signal`` is positive, ties elsewhere), its spending counted; what a deciding
method cannot see; and a method of another package, registered through the entry-point group, compared with them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_compare import FEATURES, OPERATORS, label_items, labels

from simmerge.evaluate.methods import (
    ENTRY_POINT_GROUP,
    Decision,
    SelectionMethod,
    compare_methods,
    evaluations_to_match,
    method_entries,
    method_problems,
)

RUN = labels(0)
ITEMS = label_items(RUN, n_items=40, shared=True, scale=0.05)
SPECS = [
    {"name": "simmerge"},
    {"name": "simmerge_plus_k", "params": {"k": 1}},
    {"name": "simmerge_plus_k", "params": {"k": 4}},
    {"name": "successive_halving", "params": {"budget": 1.0, "start_items": 5}},
    {"name": "best_fixed"},
    {"name": "random"},
    {"name": "oracle"},
]


def run(specs=SPECS, table=RUN, items=ITEMS, seed=0):
    return compare_methods(
        table, items, method_entries(specs), FEATURES, OPERATORS, families=["per_operator_ridge"], seed=seed, n_boot=200
    )


@pytest.fixture(scope="module")
def compared():
    return run()


def test_every_built_in_method_is_scored_on_every_pair_with_what_it_spent(compared):
    units, summary = compared
    table = summary.set_index("method")
    assert list(table.index) == [
        "simmerge",
        "simmerge_plus_k (k=1)",
        "simmerge_plus_k (k=4)",
        "successive_halving (budget=1.0, start_items=5)",
        "best_fixed",
        "random",
        "oracle",
    ]
    assert (table["pairs"] == 10).all()  # unordered pairs of five experts, each once
    # 3 operators, slerp in both orders: 4 candidates per pair; 40 of a pair's 80 items (2 tasks) are for search
    assert (units["candidates"] == 4).all()
    assert table.loc["simmerge", ["merges", "items"]].tolist() == [1, 0]
    assert table.loc["simmerge_plus_k (k=1)", ["merges", "items"]].tolist() == [1, 40]
    assert table.loc["simmerge_plus_k (k=4)", ["merges", "items"]].tolist() == [4, 160]
    assert table.loc["successive_halving (budget=1.0, start_items=5)", "merges"] == 4
    # the rule is learnt from other pairs: SimMerge finds the best candidate everywhere, the fixed policy cannot
    assert table.loc["simmerge", "regret"] == pytest.approx(0, abs=1e-12)
    assert table.loc["best_fixed", "regret"] > 0.1 and table.loc["best_fixed", "difference_hi"] < 0
    assert table.loc["oracle", "bound"] and not table.loc["simmerge", "bound"]
    assert table.loc["simmerge", "difference"] == 0
    # a pair is tested in the fold of each of its experts: both decisions are in the units table
    assert units.groupby(["method", "unit"]).size().eq(2).all()


def test_a_search_that_evaluates_every_candidate_on_every_item_finds_the_search_halfs_best(compared):
    units, _ = compared
    exhaustive = units[units["method"] == "simmerge_plus_k (k=4)"]
    assert (exhaustive["regret"] < 0.05).all()  # best on the search half; scored on the other, so near the oracle
    matched = evaluations_to_match(compared[1])
    assert set(matched) == {"simmerge_plus_k", "successive_halving"}


def test_the_same_seed_gives_identical_tables_and_the_random_draw_moves_with_it(compared):
    again = run()
    pd.testing.assert_frame_equal(compared[0], again[0])
    pd.testing.assert_frame_equal(compared[1], again[1])
    other = run([{"name": "random"}], seed=5)[0]
    assert list(other["choice"]) != list(compared[0].loc[compared[0]["method"] == "random", "choice"])


def test_the_label_free_choice_merges_and_probes_every_candidate_and_reads_no_label():
    # a drift that mirrors the label: the merge that stays closest to its parents is the best one
    table = RUN.assign(parent_drift=1.0 - RUN["normalised"])
    units, summary = run([{"name": "label_free"}, {"name": "oracle"}], table=table)
    row = summary.set_index("method").loc["label_free"]
    assert row["regret"] == pytest.approx(0, abs=1e-12) and not row["reads_features"]
    # 4 candidates merged once each, each passed over the pair's 2 tasks' probes; nothing scored
    assert (row["merges"], row["items"], row["probe_passes"]) == (4, 0, 8)
    with pytest.raises(ValueError, match="merges.parent_drift: true"):
        run([{"name": "label_free"}])  # labels of merges whose drift was not measured


@pytest.mark.parametrize(
    ("ordered_by", "operators", "reads_features"),
    # without slerp's edge the policy is linear or ties, whichever won the fold's training pairs: symmetric, no order
    [("tv_rel_norm", {"slerp"}, 1.0), ("parent_score", {"slerp"}, 0.0), (None, {"linear", "ties"}, 0.0)],
)
def test_the_fixed_policy_pays_for_the_features_only_when_its_order_rule_reads_them(
    ordered_by, operators, reads_features
):
    # slerp is best anchored on the expert larger in `ordered_by` (task-vector norm or its own score); the other
    # column is equal for every expert, so its order rule cannot tell them apart
    rank = {expert: index for index, expert in enumerate(sorted(set(RUN["a"])))}
    table = RUN.assign(tv_rel_norm_a=1.0, tv_rel_norm_b=1.0, parent_score_a=1.0, parent_score_b=1.0)
    if ordered_by is not None:
        table[f"{ordered_by}_a"] = 1.0 + 0.1 * table["a"].map(rank)
        table[f"{ordered_by}_b"] = 1.0 + 0.1 * table["b"].map(rank)
        slerp = table["operator"] == "slerp"
        table.loc[slerp, "normalised"] = np.where(
            table.loc[slerp, "a"].map(rank) > table.loc[slerp, "b"].map(rank), 0.95, 0.9
        )
        table["merge_score"] = table["normalised"]
    units, summary = run([{"name": "best_fixed"}], table=table, items=label_items(table, n_items=40, shared=True))
    assert set(units["choice"].str.split("@").str[0]) == operators
    if ordered_by is not None:  # the learnt order rule anchors every choice on the larger expert
        anchors = units["choice"].str.split("@").str[1]
        larger = [max(unit.split("|"), key=rank.get) for unit in units["unit"]]
        assert list(anchors) == larger
    assert summary.set_index("method").loc["best_fixed", "reads_features"] == reads_features


class Peeking(SelectionMethod):
    def choose(self, decision: Decision):
        decision.rows["normalised"]  # the merged models' outcomes are not in a deciding method's rows


class ReadsHeldOut(SelectionMethod):
    def choose(self, decision: Decision):
        return max(decision.candidates, key=decision.held_out_score)


def test_a_deciding_method_sees_no_merge_outcome_and_no_held_out_item():
    from simmerge.evaluate.methods import MethodEntry

    with pytest.raises(KeyError, match="normalised"):
        compare_methods(RUN, ITEMS, [_entry(Peeking)], FEATURES, OPERATORS, families=["ridge"])
    with pytest.raises(PermissionError, match="reads_held_out_items"):
        compare_methods(RUN, ITEMS, [_entry(ReadsHeldOut)], FEATURES, OPERATORS, families=["ridge"])
    assert MethodEntry  # the entry type a researcher's tests can build by hand, as _entry does


def _entry(cls):
    from simmerge.evaluate.methods import MethodEntry

    class Entry(MethodEntry):
        def make(self):
            return cls()

    return Entry(label=cls.__name__, name=cls.__name__, params={})


def test_configured_methods_are_checked_before_anything_runs():
    problems = method_problems(
        [
            {"name": "no_such_method"},
            {"name": "simmerge_plus_k", "params": {"k": 0}},
            {"name": "successive_halving", "params": {"rounds": 3}},
            {"name": "random"},
            {"name": "random"},
        ]
    )
    assert len(problems) == 4
    assert "predictor.methods[0] (no_such_method)" in problems[0] and ENTRY_POINT_GROUP in problems[0]
    registered = "best_fixed, label_free, oracle, random, simmerge, simmerge_plus_k, successive_halving"
    assert f"registered: {registered}" in problems[0]
    assert "k must be at least 1" in problems[1]
    assert "unexpected keyword argument 'rounds'" in problems[2]
    assert "label 'random' is used twice" in problems[3]


DOC = Path(__file__).parents[2] / "docs" / "selection-methods.md"


@pytest.fixture
def installed_method(tmp_path, monkeypatch):
    """The example method of docs/selection-methods.md, installed on the path as its page says: its module, and
    a dist-info whose entry points are the page's ``[project.entry-points...]`` table."""
    page = DOC.read_text(encoding="utf-8")
    module = re.search(r"```python\n# my_methods/closest_parents.py\n(.*?)```", page, re.S).group(1)
    entry = re.search(r'\[project.entry-points."(.+?)"\]\n(\w+) = "(.+?)"', page)
    assert entry.group(1) == ENTRY_POINT_GROUP
    (tmp_path / "my_methods").mkdir()
    (tmp_path / "my_methods" / "__init__.py").write_text("")
    (tmp_path / "my_methods" / "closest_parents.py").write_text(module)
    info = tmp_path / "my_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry.group(2)} = {entry.group(3)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return entry.group(2)


def test_the_documented_method_registered_by_another_package_runs_through_the_comparison(installed_method, compared):
    # on the synthetic run linear wins where `signal` > 0 and ties elsewhere: the documented one-feature rule at that
    # threshold is the oracle wherever its training pairs had both signs (every fold but e0's, whose six training
    # pairs are all positive), and at a threshold no pair reaches it is one fixed operator per fold
    specs = [
        {"name": "simmerge"},
        {"name": installed_method, "params": {"feature": "signal", "threshold": 0.0}, "label": "rule at 0"},
        {"name": installed_method, "params": {"feature": "signal", "threshold": -2.0}, "label": "rule at -2"},
    ]
    assert method_problems(specs) == []
    assert (
        "unexpected keyword argument 'cutoff'"
        in method_problems([{"name": installed_method, "params": {"cutoff": 1}}])[0]
    )
    units, summary = run(specs)
    table = summary.set_index("method")
    assert (table["pairs"] == 10).all() and table.loc["rule at 0", "merges"] == 1
    rule = units[units["method"] == "rule at 0"]
    assert (rule.loc[rule["fold"] != "e0", "regret"].abs() < 1e-12).all() and (rule["fold"] == "e0").any()
    assert units[units["method"] == "rule at -2"].groupby("fold")["choice"].nunique().eq(1).all()
    assert table.loc["rule at -2", "regret"] > table.loc["rule at 0", "regret"]
    assert table.loc["rule at -2", "difference"] < 0 and np.isfinite(table.loc["rule at -2", "difference_lo"])


def test_a_config_naming_an_unregistered_method_is_refused_when_the_workflow_is_parsed():
    from shipped_configs import expect_config_error, read_config

    raw = read_config("smoke.yaml")
    raw["predictor"] = {"methods": [{"name": "simmerge"}, {"name": "adamms", "params": {"probes": 8}}]}
    expect_config_error(raw, "invalid catalog", "predictor.methods[1] (adamms)", "is not registered")


def test_the_label_free_method_needs_the_merges_parent_drift():
    from shipped_configs import expect_config_error, read_config

    raw = read_config("smoke.yaml")
    raw["merges"]["parent_drift"] = False  # the default methods include label_free
    expect_config_error(raw, "label_free chooses by the merges' parent drift", "merges.parent_drift: false")
    raw["predictor"] = {"methods": [{"name": "simmerge"}, {"name": "oracle"}]}
    from shipped_configs import REPO

    from simmerge.run import load

    assert load(raw, workdir=REPO).config.merges.parent_drift is False


def test_simmerge_search_on_a_run_without_parent_drift_names_what_to_do(tmp_path, capsys):
    from simmerge.cli import main
    from simmerge.core.layout import RunLayout

    layout = RunLayout(tmp_path / "old")
    layout.labels_parquet.parent.mkdir(parents=True)
    RUN.to_parquet(layout.labels_parquet)  # labels of merges made before merges.parent_drift
    ITEMS.to_parquet(layout.label_items)
    assert main(["search", "--run", str(layout.root)]) == 2
    assert "has no parent drift" in capsys.readouterr().err
    # without label_free the same run is compared (methods that read no similarity feature: the toy labels have none)
    assert main(["search", "--run", str(layout.root), "--methods", "best_fixed", "random", "oracle"]) == 0
    assert list(pd.read_csv(layout.search_summary)["method"]) == ["best_fixed", "random", "oracle"]
