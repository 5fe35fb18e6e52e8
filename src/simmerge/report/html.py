"""``report.html``: one self-contained page (plots embedded as PNG) with everything a reader of a run needs.

Sections: what was run (catalog, tasks, operators, library versions), the expert scores, which operator wins
where (heatmap + table), the comparison of SimMerge against fixed operators / oracle / random per protocol with
95% intervals, predicted vs actual scores, chosen vs oracle vs best fixed per pair, feature importances of the
fitted predictor, and the cost of SimMerge's decisions against merge-and-evaluate.
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
from sklearn.inspection import permutation_importance

from simmerge.core.provenance import ProvenanceCheck
from simmerge.evaluate.predictor import TARGET
from simmerge.evaluate.ranking import best_per_pair, operator_wins, pair_scores, summary_blocks
from simmerge.merges.tables import score_cells
from simmerge.online.bandit import regret_summary
from simmerge.report.provenance import provenance_summary, provenance_table, stale_table

PROTOCOL_TITLES = {"checkpoint": "leave-one-checkpoint-out", "task": "leave-one-task-out"}


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


def feature_importances(predictor, rows: pd.DataFrame, *, seed: int, top: int = 15) -> pd.DataFrame:
    """Permutation importance (drop in R²) of each input of the fitted predictor on its training rows."""
    columns = list(predictor.feature_names_in_)
    result = permutation_importance(predictor, rows[columns], rows[TARGET], n_repeats=5, random_state=seed, n_jobs=1)
    table = pd.DataFrame(
        {"input": columns, "importance": result.importances_mean, "sd": result.importances_std}
    ).sort_values("importance", ascending=False)
    return table.head(top).reset_index(drop=True)


def comparison_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per protocol: SimMerge, best fixed, oracle, random, gap closure, top-1, regret (each with its 95%
    interval), Spearman and win/tie/loss against the best fixed operator, from ``compare/<protocol>/summary.json``."""
    return pd.DataFrame(
        [
            {
                "protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]),
                "units": int(s.get("units", 0)),
                "SimMerge": _with_ci(s, "simmerge"),
                "best fixed": _with_ci(s, "best_fixed"),
                "oracle": _with_ci(s, "oracle"),
                "random": _with_ci(s, "random"),
                "gap closure": _with_ci(s, "gap_closure"),
                "top-1 (strict)": _with_ci(s, "top1"),
                "top-1 (within noise)": _with_ci(s, "top1_tied"),
                "regret": _with_ci(s, "regret"),
                "Spearman": _number(s.get("spearman"), digits=2),
                "win/tie/loss vs best fixed": (
                    f"{s['win']:.0f}/{s['tie']:.0f}/{s['loss']:.0f}" if s.get("units") else "–"
                ),
            }
            for s in summaries
        ]
    )


def fixed_operator_table(summaries: Sequence[Mapping[str, Any]], operators: Sequence[str]) -> pd.DataFrame:
    """Each fixed operator's mean normalised score over all units, one column per protocol."""
    return pd.DataFrame(
        [
            {"operator": name, **{s["protocol"]: s.get("fixed_operators", {}).get(name) for s in summaries}}
            for name in operators
        ]
    )


def build_report(
    *,
    title: str,
    run_facts: Mapping[str, Any],
    expert_scores: pd.DataFrame,
    operators: Sequence[Mapping[str, Any]],
    labels: pd.DataFrame,
    tie_z: float,
    summaries: Sequence[Mapping[str, Any]],
    units: pd.DataFrame,
    candidates: pd.DataFrame,
    cv: Mapping[str, Any],
    importances: pd.DataFrame,
    costs: pd.DataFrame,
    multiway: pd.DataFrame | None = None,
    bandit: pd.DataFrame | None = None,
    arrivals: Sequence[Mapping[str, Any]] = (),
    provenance: ProvenanceCheck | None = None,
) -> str:
    """The HTML text of the report (no external resources).

    ``expert_scores`` is ``scores/experts.csv`` (:func:`simmerge.merges.tables.expert_table`); the operator
    ranking is recomputed from ``labels`` with the tie band ``tie_z``, as the ``operator_ranking`` rule does.
    ``units`` and ``candidates`` are the leave-one-checkpoint-out tables of :func:`simmerge.evaluate.compare.compare`;
    ``summaries`` has one summary per protocol; ``costs`` is :func:`simmerge.evaluate.costs.decision_costs`;
    ``multiway`` is ``multiway/summary.csv`` and ``bandit`` the replay table of :func:`simmerge.online.bandit.replay`
    with its ``arrivals`` (no section without them). ``provenance`` is
    :func:`simmerge.report.provenance.read_provenance` of the run's records (no section without it).
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
    best = best_per_pair(pair_scores(labels), z=tie_z)
    ranking = [
        f"<p>{html.escape(block)}</p>" if isinstance(block, str) else _table_html(block)
        for block in summary_blocks(best, operator_wins(best, operator_names), z=tie_z)
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
        "<h2>SimMerge against fixed operators, the oracle and random choice</h2>",
        "<p>Means over test units with bootstrap 95% intervals. Gap closure = (SimMerge − best fixed) ÷ "
        "(oracle − best fixed); the best fixed operator is chosen on the training folds only. Top-1 within "
        "noise counts a choice within the tie band of the oracle as correct.</p>",
        _table_html(comparison_table(summaries)),
        _figure_html(gap_closure_plot(summaries), "gap closure"),
        "<h3>Fixed operators (mean normalised score over all units)</h3>",
        _table_html(fixed_operator_table(summaries, [op["name"] for op in operators])),
        f"<p>Predictor family chosen by leave-one-checkpoint-out CV: <b>{html.escape(str(cv.get('family')))}</b>"
        f" (fitted on {cv.get('rows')} label rows).</p>",
        _table_html(pd.DataFrame(cv.get("families", []))),
    ]
    if not candidates.empty:
        sections.append(_figure_html(scatter_predicted_actual(candidates), "predicted vs actual"))
    if not units.empty:
        sections.append(_figure_html(chosen_vs_oracle(units), "chosen vs oracle"))
        sections.append("<h3>Choices per pair (leave-one-checkpoint-out)</h3>")
        columns = ["fold", "unit", "chosen", "simmerge", "best_fixed_operator", "best_fixed", "oracle_choice", "oracle"]
        sections.append(_table_html(units[columns]))
    sections += [
        "<h2>Feature importances of the fitted predictor</h2>",
        "<p>Permutation importance: drop in R² on the training rows when one input is shuffled.</p>",
        _table_html(importances),
        "<h2>Cost: SimMerge's decision against merge-and-evaluate</h2>",
        "<p>Wall seconds from the jobs' <code>benchmark:</code> files. SimMerge: each member's probe pass shared "
        "among its pairs, both orders' pair features, a share of the predictor fit. Merge-and-evaluate: every "
        "merge job of the pair.</p>",
        _table_html(costs, digits=1),
    ]
    if not costs.empty:
        total_s, total_m = costs["simmerge_s"].sum(), costs["merge_evaluate_s"].sum()
        sections.append(
            f"<p>All pairs: SimMerge {total_s:.0f} s, merge-and-evaluate {total_m:.0f} s "
            f"({total_m / total_s:.0f}× more).</p>"
        )
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


def _with_ci(summary: Mapping[str, Any], key: str) -> str:
    value, low, high = (summary.get(f"{key}{suffix}", math.nan) for suffix in ("", "_lo", "_hi"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


__all__ = ["build_report", "comparison_table", "feature_importances", "fixed_operator_table"]
