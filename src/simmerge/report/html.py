"""``report.html``: one self-contained page (plots embedded as PNG) with everything a reader of a run needs.

Sections: what was run (catalog, tasks, operators, library versions), the expert scores, which operator wins
where (heatmap + table), the comparison of SimMerge against fixed operators / oracle / random per protocol with
95% intervals, predicted vs actual scores, chosen vs oracle vs best fixed per pair, feature importances on
held-out rows, and the cost of SimMerge against merge-and-evaluate: per new decision, and with the labels that
trained the predictor (the break-even number of decisions).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from simmerge.core.config import PROTOCOL_TITLES
from simmerge.core.provenance import ProvenanceCheck
from simmerge.evaluate.labels import seed_noise_note
from simmerge.evaluate.ranking import best_per_pair, operator_wins, pair_scores, summary_blocks
from simmerge.merges.tables import score_cells
from simmerge.online.bandit import regret_summary
from simmerge.report.provenance import provenance_summary, provenance_table, stale_table

# What the cost section counts (simmerge.evaluate.costs), in the words both the report and the results page print.
COST_SOURCE = (
    "Wall seconds of this run's jobs, from their Snakemake benchmark files. They hold for the machine that ran the "
    "jobs: on other hardware (a GPU above all) merges and evaluations speed up by other factors than probe passes, "
    "and the ratios and the break-even move with them."
)
MARGINAL_COST = (
    "Marginal cost of one new decision, once a labelled catalog and a fitted predictor exist. SimMerge, per "
    "unordered pair: each expert's model summary (probe passes, weight sketch) shared among the N − 1 pairs it "
    "serves; the base's summary, which every pair's features read, shared among all pairs; both orders' pair "
    "features; the predictor fit shared among all pairs, standing in for the prediction (an upper bound: a fitted "
    "predictor predicts in a fraction of a second); and the one merge and evaluation of the candidate it chose "
    "(leave-one-checkpoint-out; the choices of several folds averaged; for a pair no fold tested, the mean of its "
    "merge jobs). Merge-and-evaluate: every merge job of the pair (both orders of an order-sensitive operator)."
)


def _figure_html(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table_html(frame: pd.DataFrame, *, digits: int = 3, escape: bool = True) -> str:
    """A table of the report: floats to ``digits`` decimals, missing numbers as "–"."""
    return frame.to_html(index=False, border=0, na_rep="–", float_format=f"{{:.{digits}f}}".format, escape=escape)


def operator_heatmap(best_scores: pd.DataFrame, operators: Sequence[str]):
    """Ordered pairs × operators of mean normalised merge scores, the best of each row outlined."""
    table = best_scores.pivot_table(index=["a", "b"], columns="operator", values="merge_score", sort=False)
    table = table[[op for op in operators if op in table.columns]]
    figure = Figure(figsize=(1.0 + 0.6 * len(table.columns), 0.8 + 0.32 * len(table)))
    axis = figure.subplots()
    image = axis.imshow(table.to_numpy(float), aspect="auto", cmap="viridis")
    axis.set_xticks(range(len(table.columns)), table.columns, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(table)), [f"{a} → {b}" for a, b in table.index], fontsize=8)
    for row, values in enumerate(table.to_numpy(float)):
        if np.isfinite(values).any():
            column = int(np.nanargmax(values))
            axis.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    figure.colorbar(image, ax=axis, label="mean normalised score")
    axis.set_title("Merged score per ordered pair and operator (red: best)")
    return figure


def scatter_predicted_actual(candidates: pd.DataFrame):
    figure = Figure(figsize=(4.8, 4.4))
    axis = figure.subplots()
    axis.scatter(candidates["actual"], candidates["predicted"], s=12, alpha=0.6)
    low = float(np.nanmin([candidates["actual"].min(), candidates["predicted"].min()]))
    high = float(np.nanmax([candidates["actual"].max(), candidates["predicted"].max()]))
    axis.plot([low, high], [low, high], color="grey", lw=1, ls="--")
    axis.set_xlabel("actual mean normalised score")
    axis.set_ylabel("out-of-fold prediction")
    axis.set_title("Predicted vs actual (held-out checkpoints)")
    return figure


def chosen_vs_oracle(units: pd.DataFrame):
    frame = units.drop_duplicates("unit")
    positions = np.arange(len(frame))
    width = 0.27
    figure = Figure(figsize=(1.5 + 0.5 * len(frame), 3.6))
    axis = figure.subplots()
    for offset, (column, label) in zip(
        (-width, 0.0, width),
        (("best_fixed", "best fixed operator"), ("simmerge", "SimMerge"), ("oracle", "oracle")),
        strict=True,
    ):
        axis.bar(positions + offset, frame[column], width, label=label)
    axis.set_xticks(positions, frame["unit"], rotation=60, ha="right", fontsize=8)
    axis.set_ylabel("mean normalised score")
    axis.legend(fontsize=8)
    axis.set_title("Per pair: SimMerge's choice, the best fixed operator and the oracle")
    return figure


def gap_closure_plot(summaries: Sequence[Mapping[str, Any]]):
    figure = Figure(figsize=(4.5, 2.6))
    axis = figure.subplots()
    names = [PROTOCOL_TITLES.get(s["protocol"], s["protocol"]) for s in summaries]
    values = [s.get("gap_closure", math.nan) for s in summaries]
    low = [v - s.get("gap_closure_lo", math.nan) for v, s in zip(values, summaries, strict=True)]
    high = [s.get("gap_closure_hi", math.nan) - v for v, s in zip(values, summaries, strict=True)]
    axis.barh(names, values, xerr=[np.nan_to_num(low), np.nan_to_num(high)], capsize=4)
    axis.axvline(0, color="grey", lw=1)
    axis.axvline(1, color="grey", lw=1, ls="--")
    axis.set_xlabel("gap closure (0: best fixed operator, 1: oracle)")
    return figure


def multiway_plot(table: pd.DataFrame):
    """Target score of every approach, one panel per candidate set."""
    sets = list(dict.fromkeys(table["set"]))
    figure = Figure(figsize=(4.2 * len(sets), 0.28 * table.groupby("set").size().max() + 1))
    axes = figure.subplots(1, len(sets))
    for axis, name in zip(np.atleast_1d(axes), sets, strict=True):
        rows = table[table["set"] == name].iloc[::-1]
        colours = [
            "tab:red" if a == "simmerge" else "tab:grey" if a == "best_expert" else "tab:blue" for a in rows["approach"]
        ]
        axis.barh(rows["approach"], rows["target_score"], color=colours)
        axis.axvline(1, color="grey", lw=1, ls="--")
        axis.set_title(f"{name} (k ≤ {rows['size'].max()})", fontsize=9)
        axis.set_xlabel("target score (1 = best expert on every task)")
        axis.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return figure


def regret_plot(replay: pd.DataFrame):
    """Cumulative regret against rounds per policy: mean over the replay seeds with a ± 1 sd band."""
    figure = Figure(figsize=(6.5, 3.5))
    axis = figure.subplots()
    curves = replay.groupby(["policy", "round"])["cumulative_regret"].agg(["mean", "std"]).reset_index()
    for policy in dict.fromkeys(replay["policy"]):
        curve = curves[curves["policy"] == policy]
        axis.plot(curve["round"], curve["mean"], label=policy, lw=2 if policy == "bandit" else 1)
        axis.fill_between(
            curve["round"], curve["mean"] - curve["std"].fillna(0), curve["mean"] + curve["std"].fillna(0), alpha=0.15
        )
    axis.set_xlabel("round (merge request)")
    axis.set_ylabel("cumulative regret")
    axis.legend(fontsize=8)
    return figure


def methods_plot(summary: pd.DataFrame):
    """Held-out score against items scored per pair for every selection method (``search/summary.csv``):
    the quality a search buys with its evaluations, SimMerge and the label-free choice at none, the oracle as a
    line."""
    figure = Figure(figsize=(6.5, 3.6))
    axis = figure.subplots()
    shown = summary[~summary["bound"].astype(bool)]
    for name, rows in shown.groupby("name", sort=False):
        rows = rows.sort_values("items")
        style = {"marker": "o", "lw": 2 if name == "simmerge" else 1}
        axis.errorbar(
            rows["items"],
            rows["score"],
            yerr=[rows["score"] - rows["score_lo"], rows["score_hi"] - rows["score"]],
            label=name,
            capsize=3,
            **style,
        )
    for bound in summary[summary["bound"].astype(bool)].itertuples():
        axis.axhline(bound.score, color="grey", ls="--", lw=1, label=f"{bound.method} (bound)")
    axis.set_xscale("symlog", linthresh=10)
    axis.set_xlabel("items scored per pair (0: no evaluation)")
    axis.set_ylabel("held-out score")
    axis.legend(fontsize=7)
    return figure


def comparison_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per protocol, from ``compare/<protocol>/summary.json``: the units (and the expert pairs they
    cluster in), SimMerge, the best fixed policy, the paired difference, the oracle, random choice, gap closure,
    top-1 (with its chance level), regret and Spearman, each with its 95% cluster-bootstrap interval, and
    win/tie/loss against the best fixed policy."""
    return pd.DataFrame(
        [
            {
                "protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]),
                "units (pairs)": f"{s.get('units', 0):.0f} ({s.get('clusters', 0):.0f})",
                "SimMerge": _with_ci(s, "simmerge"),
                "best fixed policy": _with_ci(s, "best_fixed"),
                "SimMerge − best fixed": _with_ci(s, "difference"),
                "oracle": _with_ci(s, "oracle"),
                "random": _with_ci(s, "random"),
                "gap closure": _with_ci(s, "gap_closure") + _nan_draws(s, "gap_closure"),
                "top-1 strict (chance)": _with_chance(s, "top1"),
                "top-1 within noise (chance)": _with_chance(s, "top1_tied"),
                "regret": _with_ci(s, "regret"),
                "Spearman": _with_ci(s, "spearman") + _nan_draws(s, "spearman"),
                "win/tie/loss over pairs vs best fixed": (
                    f"{s['win']:.0f}/{s['tie']:.0f}/{s['loss']:.0f}" if s.get("units") else "–"
                ),
            }
            for s in summaries
        ]
    )


def noise_note(summaries: Sequence[Mapping[str, Any]]) -> str:
    """How the comparison decided ties and drew its intervals (paired and two-level when the run has items)."""
    if summaries and all(s.get("item_resampling") for s in summaries if s.get("units")):
        return (
            "Ties, SimMerge − best fixed and top-1 within noise are decided on paired differences over each unit's "
            "items (the same items scored by both merges); the intervals resample expert pairs and, within each "
            "unit, its items (two levels)."
        )
    return "The tie band uses unpaired standard errors (the labels have no per-item outcomes)."


def target_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per protocol and label target (``summary["targets"]``): the headline under the task metric and
    under the gold answer's likelihood, and how often SimMerge's and the oracle's choices are the same."""
    rows = []
    for s in summaries:
        targets = s.get("targets") or {}
        for name in ("metric", "likelihood"):
            if name not in targets:
                continue
            t = targets[name]
            rows.append(
                {
                    "protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]),
                    "target": name + (" (headline)" if name == s.get("target") else ""),
                    "SimMerge": _number(t.get("simmerge"), digits=3),
                    "best fixed": _number(t.get("best_fixed"), digits=3),
                    "SimMerge − best fixed": _with_ci(t, "difference"),
                    "gap closure": _with_ci(t, "gap_closure"),
                    "top-1 within noise (chance)": _with_chance(t, "top1_tied"),
                    "pairs separated from best fixed": _number(t.get("separated"), digits=0),
                    "same choice / same oracle": (
                        f"{targets['same_choice']:.0%} / {targets['same_oracle']:.0%}"
                        if "same_choice" in targets
                        else "–"
                    ),
                }
            )
    return pd.DataFrame(rows)


def gain_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per protocol: SimMerge's gain over the best fixed policy split into choosing the operator (in the
    policy's order rule) and choosing the order, and the best policy in hindsight (chosen on the test units)."""
    return pd.DataFrame(
        [
            {
                "protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]),
                "gain from the operator": _with_ci(s, "operator_gain"),
                "gain from the order": _with_ci(s, "order_gain"),
                "best policy in hindsight": s.get("best_fixed_hindsight_policy", "–"),
                "its score": _with_ci(s, "best_fixed_hindsight"),
                "SimMerge − hindsight": _with_ci(s, "hindsight_difference"),
            }
            for s in summaries
        ]
    )


def fixed_policy_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Each fixed policy's mean score over the tested units, one column per protocol."""
    names = list(dict.fromkeys(name for s in summaries for name in s.get("fixed_policies", {})))
    return pd.DataFrame(
        [
            {
                "policy": name,
                **{
                    PROTOCOL_TITLES.get(s["protocol"], s["protocol"]): s.get("fixed_policies", {}).get(name)
                    for s in summaries
                },
            }
            for name in names
        ]
    )


def family_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per protocol, each model family's choices scored on the outer folds, and the nested inner-CV choice."""
    columns = ["protocol", "family", "simmerge", "difference", "top1", "spearman"]
    rows = [
        {"protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]), **row}
        for s in summaries
        for row in s.get("families", [])
    ]
    return pd.DataFrame(rows, columns=columns)


def build_report(
    *,
    title: str,
    run_facts: Mapping[str, Any],
    expert_scores: pd.DataFrame,
    operators: Sequence[Mapping[str, Any]],
    labels: pd.DataFrame,
    label_items: pd.DataFrame | None,
    tie_z: float,
    summaries: Sequence[Mapping[str, Any]],
    units: pd.DataFrame,
    candidates: pd.DataFrame,
    cv: Mapping[str, Any],
    importances: pd.DataFrame,
    costs: pd.DataFrame,
    break_even: Mapping[str, float | None],
    multiway: pd.DataFrame | None = None,
    bandit: pd.DataFrame | None = None,
    arrivals: Sequence[Mapping[str, Any]] = (),
    provenance: ProvenanceCheck | None = None,
    methods: pd.DataFrame | None = None,
    budgets: pd.DataFrame | None = None,
    transfers: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The HTML text of the report (no external resources).

    ``expert_scores`` is ``scores/experts.csv`` (:func:`simmerge.merges.tables.expert_table`); the operator
    ranking is recomputed from ``labels`` and ``label_items`` (paired ties; None: unpaired) with the tie band
    ``tie_z``, as the ``operator_ranking`` rule does.
    ``units`` and ``candidates`` are the leave-one-checkpoint-out tables of :func:`simmerge.evaluate.compare.compare`;
    ``summaries`` has one summary per protocol; ``costs`` is :func:`simmerge.evaluate.costs.decision_costs` and
    ``break_even`` :func:`simmerge.evaluate.costs.break_even`;
    ``multiway`` is ``multiway/summary.csv`` and ``bandit`` the replay table of :func:`simmerge.online.bandit.replay`
    with its ``arrivals`` (no section without them). ``provenance`` is
    :func:`simmerge.report.provenance.read_provenance` of the run's records (no section without it).
    ``methods`` is ``search/summary.csv`` (:func:`simmerge.evaluate.methods.methods_summary`) and ``budgets``
    :func:`simmerge.evaluate.costs.method_budgets` of it; ``transfers`` the ``transfer/from_<run>/summary.json``
    of each source run (no section without them).
    """
    operator_names = [op["name"] for op in operators]
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in run_facts.items()
    )
    operator_rows = pd.DataFrame(
        [
            {
                "name": op["name"],
                "method": op["method"],
                "order-sensitive": op.get("order_sensitive"),
                "randomised": op.get("randomised"),
                "parameters": {
                    k: v
                    for k, v in op.items()
                    if k in ("parameters", "model_parameters", "anchor_parameters", "other_parameters") and v
                },
            }
            for op in operators
        ]
    )
    best = best_per_pair(pair_scores(labels), label_items, z=tie_z)
    ranking = [
        f"<p>{html.escape(block)}</p>" if isinstance(block, str) else _table_html(block)
        for block in summary_blocks(
            best, operator_wins(best, operator_names), z=tie_z, seed_note=seed_noise_note(labels)
        )
    ]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>What was run</h2>",
        f"<table>{facts}</table>",
        "<h3>Expert scores (primary metric; home tasks in bold)</h3>",
        _table_html(score_cells(expert_scores, emphasis=("<b>", "</b>")), escape=False),
        "<h3>Operators</h3>",
        _table_html(operator_rows),
        *([] if provenance is None else _provenance_html(provenance)),
        "<h2>Which operator wins where</h2>",
        _figure_html(operator_heatmap(pair_scores(labels), operator_names), "operator heatmap"),
        *ranking,
        "<h2>SimMerge against fixed policies, the oracle and random choice</h2>",
        "<p>Three protocols. <i>New checkpoint</i>: a checkpoint and its near-duplicates (hold-out groups: "
        f"{html.escape(holdout_groups(summaries))}) leave training together; its pairs are tested, each pair "
        "once (a pair tested in the folds of both its experts scores the mean of both decisions). <i>New task for "
        "already-merged pairs</i>: a task is held out, but the same merges scored on the other tasks stay in "
        "training — not a cold start. <i>Cold start</i>: a task and a checkpoint group are held out together, so "
        "no merge of a test pair is in training on any task. The family, the fitted model and the best fixed "
        "policy are learned on the training folds only.</p>"
        "<p>Means over test units with 95% intervals from a bootstrap that resamples expert pairs (units of one "
        "pair on several tasks move together). The best fixed policy is one operator and, for an order-sensitive "
        "operator, an order rule a user can apply without labels (anchor on the larger or smaller task vector, "
        "on the better expert, or at random), chosen on the training folds. Gap closure = (SimMerge − best fixed) "
        "÷ (oracle − best fixed); the oracle is the best of several noisy scores, so it is biased upwards, regret "
        "too, and gap closure is conservative. Top-1 within noise counts a choice within the tie band of the "
        "oracle as correct; its chance level is what a uniformly random candidate scores. "
        f"{html.escape(noise_note(summaries))} Bootstrap draws where a ratio is undefined are counted, not "
        "dropped.</p>",
        _table_html(comparison_table(summaries)),
        "<h3>Under both label targets</h3>",
        "<p>The same comparison with the task metric and with the gold answer's per-item probability (multiple "
        "choice: the gold choice among the choices; one-pass exact match: the per-token probability of answer and "
        "stop), each over the better parent's; 'same choice': units where SimMerge picks the same candidate under "
        "both.</p>",
        _table_html(target_table(summaries)),
        _figure_html(gap_closure_plot(summaries), "gap closure"),
        "<h3>Where the gain comes from</h3>",
        _table_html(gain_table(summaries)),
        "<h3>Fixed policies (mean score over the tested units)</h3>",
        _table_html(fixed_policy_table(summaries)),
        "<h3>Model families (nested)</h3>",
        "<p>Each family's choices on the same outer folds; the last row of each protocol is the choice made by "
        "inner cross-validation inside every training fold, the number the comparison reports. Picking the best "
        f"row by eye would be optimistic. The deployed predictor's family: <b>{html.escape(str(cv.get('family')))}"
        f"</b> (fitted on {cv.get('rows')} label rows).</p>",
        _table_html(family_table(summaries)),
    ]
    if not candidates.empty:
        sections.append(_figure_html(scatter_predicted_actual(candidates), "predicted vs actual"))
    if not units.empty:
        sections.append(_figure_html(chosen_vs_oracle(units), "chosen vs oracle"))
        sections.append("<h3>Choices per pair (new checkpoint)</h3>")
        columns = ["unit", "fold", "chosen", "simmerge", "best_fixed_policy", "best_fixed", "oracle_choice", "oracle"]
        sections.append(_table_html(units[columns]))
    sections += [
        "<h2>Feature importances on held-out rows</h2>",
        "<p>Permutation importance: drop in R² on each fold's held-out rows (new checkpoint protocol) when one "
        "input is shuffled, averaged over folds weighted by their rows, with the spread over folds.</p>",
        _table_html(importances.head(15)),
        "<h2>Cost: SimMerge against merge-and-evaluate</h2>",
        f"<p>{html.escape(COST_SOURCE)}</p>",
        f"<p>{html.escape(MARGINAL_COST)}</p>",
        _table_html(costs, digits=1),
    ]
    if not costs.empty:
        sections.append(f"<p>{html.escape(pairs_total(costs))}</p>")
    sections += [
        "<h3>Counting the labels that trained the predictor</h3>",
        f"<p>{html.escape(break_even_text(break_even))}</p>",
    ]
    if methods is not None and not methods.empty:
        sections += [
            "<h2>Selection methods at a counted budget</h2>",
            "<p>Every configured selection method on the held-out checkpoint folds: SimMerge (no evaluation), "
            "SimMerge + k (its k best-predicted candidates merged and scored), successive halving over the grid, the "
            "label-free choice (the merge closest to its parents on their unlabelled probes: merges and probe "
            "passes, no evaluation), the best fixed policy, random choice and the oracle (a bound: it reads the "
            "held-out items). Each pair's items are split per task; methods evaluate on one half and are scored on "
            "the other. <i>difference</i>: paired difference from SimMerge over the same pairs; 95% bootstrap "
            "intervals over pairs.</p>",
            _figure_html(methods_plot(methods), "held-out score against items per pair"),
            _table_html(methods.drop(columns=["name"], errors="ignore")),
        ]
        if budgets is not None and not budgets.empty:
            sections += [
                "<h3>Every approach on the same axes (per decision)</h3>",
                "<p>Merges, items scored and probe passes priced with this run's own merge jobs; a decision that "
                "reads the similarity features pays SimMerge's share of probe passes, weight sketches, pair "
                "features and predictor fit (a fixed policy's only when its order rule reads the task-vector "
                "norms). The labels that trained the predictors are not counted here (see the break-even "
                "above).</p>",
                _table_html(budgets, digits=1),
            ]
    if transfers:
        from simmerge.evaluate.transfer import transfer_table  # deferred: only a run that transfers needs it
    for summary in transfers:
        sections += [
            f"<h2>Transfer from {html.escape(str(summary.get('source_run')))}</h2>",
            "<p>The source run's predictor "
            + {
                "dimensionless": "fitted again on its labels without the KL features in nats",
                "ranked": "fitted again on its labels with every feature as its within-run percentile rank (this "
                "run's features ranked among its own pairs)",
            }.get(summary.get("features"), "as fitted there, unchanged,")
            + " chooses for this run's pairs from this run's features; this run's labels score the choices, "
            "against the source's best fixed policy (what a user knows when switching catalogs) and this run's best "
            "in hindsight.</p>",
            _table_html(transfer_table(summary)),
        ]
    if multiway is not None and not multiway.empty:
        sections += [
            "<h2>Multi-way merges</h2>",
            "<p>Per candidate set: SimMerge's chain (subset, order and operators chosen from 2-way predictions, "
            "with probe passes on the intermediates and no evaluation) against every operator applied to all "
            "candidates at once, the best fixed operator chained in a random order, a random subset, and the "
            "exhaustive oracle over subsets and orders (small sets only). Target score: mean over the set's "
            "target tasks of the merge's score ÷ the best candidate expert's. <i>merges</i>: mergekit runs "
            "(SimMerge's include the planner's probe merges); <i>evaluations</i>: lm-eval runs needed to make "
            "the choice (the oracle and the best all-at-once operator are picked in hindsight).</p>",
            _figure_html(multiway_plot(multiway), "multi-way target scores"),
            _table_html(multiway),
        ]
    if bandit is not None and not bandit.empty:
        schedule = "; ".join(
            f"at {a['at']:.0%}: "
            + ", ".join(n for kind in ("checkpoints", "tasks", "operators") for n in a.get(kind, []))
            for a in arrivals
        )
        sections += [
            "<h2>Online: the contextual bandit</h2>",
            "<p>Replay on the labels: one merge request (ordered pair, task) per round, drawn from what has arrived; "
            "arms are the operators present, the context is the pair's features, the reward its normalised score. "
            f"Arrivals: {html.escape(schedule or 'none')}. The bandit, ε-greedy and random start from the labels "
            "present at round 0 and learn online; the offline predictor and the best fixed operator are fitted on "
            "those rows and frozen. Regret = oracle reward − the policy's.</p>",
            _figure_html(regret_plot(bandit), "cumulative regret"),
            _table_html(regret_summary(bandit)),
        ]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.8em 0;font-size:0.85em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def pairs_total(costs: pd.DataFrame) -> str:
    """One sentence: SimMerge's and merge-and-evaluate's seconds over all pairs of
    :func:`simmerge.evaluate.costs.decision_costs`, and their ratio."""
    simmerge, evaluate = costs["simmerge_s"].sum(), costs["merge_evaluate_s"].sum()
    return (
        f"All pairs: SimMerge {simmerge:.0f} s, merge-and-evaluate {evaluate:.0f} s "
        f"(merge-and-evaluate ÷ SimMerge: {evaluate / simmerge:.1f})."
    )


def break_even_text(totals: Mapping[str, float | None]) -> str:
    """What the labels cost and after how many new decisions SimMerge has paid them back, in words
    (``totals``: :func:`simmerge.evaluate.costs.break_even`)."""
    labels_s, marginal, grid, k = totals["labels_s"], totals["marginal_s"], totals["grid_s"], totals["break_even"]
    labels = (
        f"The labels cost {labels_s:.0f} s: the labelled catalog's whole merge grid "
        f"({totals['merge_grid_s']:.0f} s), every checkpoint's model summary ({totals['summaries_s']:.0f} s), every "
        f"ordered pair's features ({totals['pair_features_s']:.0f} s) and the predictor fit ({totals['fit_s']:.0f} s). "
        f"A new decision costs SimMerge {marginal:.1f} s and merge-and-evaluate {grid:.1f} s (means over the pairs)."
    )
    if k is None:
        return labels + " SimMerge never pays the labels back: a decision costs it no less than merge-and-evaluate."
    return (
        f"{labels} With the labels counted, SimMerge over k new decisions ({labels_s:.0f} s + k × {marginal:.1f} s) "
        f"is cheaper than merge-and-evaluate (k × {grid:.1f} s) once k exceeds "
        f"k* = {labels_s:.0f} ÷ ({grid:.1f} − {marginal:.1f}) = {k:.1f}: from decision {math.floor(k) + 1} on."
    )


def _provenance_html(check: ProvenanceCheck) -> list[str]:
    """The provenance section: one row per distinct provenance, then each problem in a warning box."""
    warning = "<p style='border:2px solid #c00;padding:4px 8px;background:#fee'><b>Warning:</b> {}</p>"
    out = [
        "<h3>Provenance</h3>",
        "<p>Who made the run's records (checkpoint manifests, expert scores, model summaries, merge records): "
        "the code version, the CPU and its vector units, the library versions.</p>",
        f"<p>{html.escape(provenance_summary(check))}</p>",
        _table_html(provenance_table(check)),
        *(warning.format(html.escape(text)) for text in check.warnings),
    ]
    if check.stale:
        out.append(_table_html(stale_table(check)))
    return out


def _number(value: float | None, *, digits: int) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _with_chance(summary: Mapping[str, Any], key: str) -> str:
    """A rate with its interval and, in brackets, what a uniformly random candidate scores on it."""
    value = _with_ci(summary, key)
    return value if value == "–" else f"{value} ({_number(summary.get(f'{key}_chance'), digits=2)})"


def _nan_draws(summary: Mapping[str, Any], key: str) -> str:
    count = summary.get(f"{key}_nan_draws")
    return f" ({count:.0f} draws undefined)" if count and not math.isnan(count) else ""


def holdout_groups(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The comparison's hold-out groups of near-duplicate checkpoints, as text."""
    groups = next((s.get("groups") for s in summaries if s.get("groups")), None)
    return ", ".join(groups) if groups else "none, every checkpoint alone"


def _with_ci(summary: Mapping[str, Any], key: str) -> str:
    value, low, high = (summary.get(f"{key}{suffix}", math.nan) for suffix in ("", "_lo", "_hi"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


__all__ = [
    "COST_SOURCE",
    "MARGINAL_COST",
    "break_even_text",
    "build_report",
    "comparison_table",
    "family_table",
    "fixed_policy_table",
    "gain_table",
    "holdout_groups",
    "pairs_total",
]
