"""The results page (``results.md``): a run's measured results and costs in Markdown, built from its own files.

Every measured number is computed here from a file of the run, and each section names the files it read, relative to
the run folder; what was run comes from the run's config, the machine from where the page is generated. The rule
``results_page`` writes ``results/<run_name>/results.md``; ``docs/results.md`` in the repository is a copy of the
default run's page.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.core import io
from simmerge.core.io import read_json
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import ProvenanceCheck
from simmerge.evaluate.costs import (
    Benchmarks,
    break_even,
    cost_summary,
    decision_costs,
    merge_costs,
    method_budgets,
    rule_seconds,
    unit_prices,
)
from simmerge.evaluate.methods import evaluations_to_match
from simmerge.evaluate.transfer import transfer_table
from simmerge.merges.tables import markdown_table
from simmerge.report.html import (
    COST_SOURCE,
    MARGINAL_COST,
    break_even_text,
    comparison_table,
    family_table,
    fixed_policy_table,
    gain_table,
    holdout_groups,
    noise_note,
    pairs_total,
    target_table,
)
from simmerge.report.provenance import provenance_summary, provenance_table, read_provenance, stale_table

PathLike = str | os.PathLike

# Column headings of the cost tables (simmerge.evaluate.costs) on the page.
DECISION_COLUMNS = {
    "summaries_s": "summaries s",
    "pair_features_s": "pair features s",
    "predict_s": "prediction (fit share) s",
    "chosen_merge_s": "chosen merge s",
    "simmerge_s": "SimMerge s",
    "merge_evaluate_s": "merge-and-evaluate s",
    "ratio": "merge-and-evaluate ÷ SimMerge",
}
MERGE_COST_COLUMNS = {
    "merge_s": "merge s",
    "eval_s": "scoring s",
    "load_s": "of which model load s",
    "overhead_s": "per-job overhead s",
    "job_s": "whole job s",
    "peak_rss_mb": "peak RSS MB",
}
RULE_COLUMNS = {"total_s": "job-seconds", "mean_s": "mean s", "max_s": "longest s", "peak_rss_mb": "peak RSS MB"}


def machine_facts() -> dict[str, str]:
    """The machine this runs on: CPU model, cores, Python, torch and the device torch would use.

    The page records them where it is generated, which for a local run is where its jobs ran: they explain the
    timings, and nothing on the page is computed from them.
    """
    import torch  # deferred: heavy, and only this function of the module needs it

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU (no CUDA device)"
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "torch": f"{torch.__version__}, device {gpu}",
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def results_page(
    *,
    run_dir: PathLike,
    facts: Mapping[str, Any],
    tasks: Sequence[str],
    machine: Mapping[str, str],
    experts: PathLike,
    ranking: PathLike,
    cv: PathLike,
    summaries: Sequence[PathLike],
    units: PathLike,
    records: Sequence[PathLike],
    benchmarks: Benchmarks,
    stages: Mapping[str, str],
    multiway: PathLike | None = None,
    bandit: PathLike | None = None,
    search: PathLike | None = None,
    transfers: Sequence[PathLike] = (),
    generated_on: datetime.date | None = None,
    provenance: Sequence[PathLike] = (),
) -> str:
    """The Markdown text of a run's results page.

    Parameters
    ----------
    run_dir : path
        ``results/<run_name>``: named in the header, and every file is cited relative to it.
    facts : mapping
        What was run (run name, seed, catalog, tasks, operators), as the workflow's config gives it.
    tasks : sequence of str
        The run's tasks (each checkpoint's probe passes count in SimMerge's decision cost).
    machine : mapping of str to str
        Where the page is generated (:func:`machine_facts`).
    experts : path
        ``scores/experts.csv``: every checkpoint's score per task, the base's row first (which names the base).
    ranking : path
        ``ranking/summary.md``: which operator wins where, and how noisy the labels are (included as written).
    cv : path
        ``predictor/cv.json``: the predictor family chosen by cross-validation.
    summaries : sequence of path
        ``compare/<protocol>/summary.json``, one per protocol.
    units : path
        ``compare/checkpoint/units.csv``: the merge SimMerge chose per pair (counted in its decision cost).
    records : sequence of path
        ``merges/<a>__<b>/<op>.json``: every merge record of the run (its jobs' costs).
    benchmarks : mapping of str to sequence of path
        Every job's benchmark file, by rule.
    stages : mapping of str to str
        The DAG stage of each rule of ``benchmarks``, in DAG order.
    multiway, bandit, search : path, optional
        ``multiway/summary.csv``, ``bandit/summary.csv`` and ``search/summary.csv``; no section without them.
    transfers : sequence of path
        ``transfer/from_<source>/summary.json`` of each ``predictor.transfer_from`` run; no section without one.
    generated_on : datetime.date, optional
        The date in the header; today by default.
    provenance : sequence of path
        The run's other records whose provenance is checked with the merge records (checkpoint manifests,
        expert scores, model summaries; :func:`simmerge.report.provenance.read_provenance`).

    Returns
    -------
    str
        The page, ending with a newline.
    """
    run = Path(run_dir)

    def cite(*paths: PathLike) -> str:
        return "Source: " + ", ".join(f"`{_relative(path, run)}`" for path in paths) + "."

    expert_scores = pd.read_csv(experts, keep_default_na=False, na_values=[""])
    expert_scores["home_tasks"] = expert_scores["home_tasks"].fillna("")
    # the costs both the cost section and the selection methods' budget read: every merge job once
    layout = RunLayout(run)
    base, expert_names = expert_scores["checkpoint"].iloc[0], list(expert_scores["checkpoint"].iloc[1:])
    job_costs = merge_costs(layout, records)
    decisions = decision_costs(layout, base, expert_names, tasks, records, units)
    compare = [read_json(path) for path in summaries]
    fit = read_json(cv)
    date = (generated_on or datetime.date.today()).isoformat()
    sections = [
        f"# Results of the run `{facts.get('run', run.name)}`",
        f"Generated by `snakemake results_page` from {run.as_posix()}/ on {date}; do not edit by hand. "
        f"Each section names the files its numbers come from, relative to {run.as_posix()}/.",
        "## What was run",
        "From the run's config:",
        _facts_table(facts),
        "Machine where this page was generated (for a local run, where its jobs ran): "
        + "; ".join(f"{key}: {value}" for key, value in machine.items())
        + ". The timings below depend on it; the results do not, beyond floating-point detail between CPU and GPU.",
        _devices([*records, *provenance]),
        *_provenance(read_provenance(run, [*provenance, *records])),
        "## Expert scores",
        cite(experts) + " Primary metric (exact match for generative tasks, accuracy for multiple choice); "
        "**bold**: the checkpoint's home task.",
        markdown_table(expert_scores).rstrip("\n"),
        _home_gains(expert_scores),
        "## Which operator wins where",
        cite(ranking),
        Path(ranking).read_text(encoding="utf-8").strip(),
        "## Predictor",
        cite(cv),
        _predictor(fit),
        "## SimMerge against fixed policies, the oracle and random choice",
        cite(*summaries)
        + " "
        + "Three protocols: a new checkpoint (held out with its near-duplicates, hold-out groups: "
        + holdout_groups(compare)
        + "; each "
        + "pair counted once), a new task for pairs already merged and scored on other tasks (not a cold "
        + "start), and a cold start (a task and a checkpoint group held out together: no merge of a test pair "
        + "in training on any task). Means over test units with 95% intervals from a bootstrap over expert "
        + "pairs. The best fixed policy (an operator, and for an order-sensitive one an order rule usable "
        + "without labels) and the model family are chosen on the training folds only; SimMerge − best fixed is"
        + " paired within units. Gap closure = (SimMerge − best fixed) ÷ (oracle − best fixed); the oracle is "
        + "the best of several noisy scores (biased upwards), so regret is inflated and gap closure "
        + "conservative. Top-1 chance levels (in brackets) are what a uniformly random candidate scores. "
        + noise_note(compare),
        _markdown(comparison_table(compare)),
        "Under both label targets — the task metric, and the gold answer's per-item probability (multiple "
        "choice: the gold choice among the choices; one-pass exact match: the per-token probability of answer and "
        "stop), each over the better parent's; 'same choice': units where SimMerge picks the same candidate "
        "under both:",
        _markdown(target_table(compare)),
        "Where the gain comes from (choosing the operator in the baseline's order rule, then the order), and the "
        "best fixed policy in hindsight (chosen on the test units themselves):",
        _markdown(gain_table(compare)),
        "Each fixed policy's mean score over the tested units:",
        _markdown(fixed_policy_table(compare), floatfmt=".3f"),
        "Model families on the same outer folds; the last row per protocol is the inner-CV choice (nested), the "
        "number reported above:",
        _markdown(family_table(compare), floatfmt=".3f"),
        *_costs(layout, base, expert_names, tasks, units, records, decisions, job_costs, benchmarks),
    ]
    if search is not None:
        sections += _search(pd.read_csv(search), cite(search), decisions, job_costs, benchmarks.get("cma_search", []))
    if transfers:
        sections += _transfers([read_json(path) for path in transfers], cite(*transfers))
    if multiway is not None:
        sections += _multiway(pd.read_csv(multiway), cite(multiway))
    if bandit is not None:
        sections += _bandit(pd.read_csv(bandit), cite(bandit))
    sections += _item_files(run)
    sections += _run_time(benchmarks, stages)
    return "\n\n".join(sections) + "\n"


def _relative(path: PathLike, run: Path) -> str:
    path = Path(path)
    return (path.relative_to(run) if path.is_relative_to(run) else path).as_posix()


def _markdown(frame: pd.DataFrame, *, floatfmt: str = "g") -> str:
    """A pipe table (:func:`simmerge.core.io.markdown_table`): floats formatted with ``floatfmt``, missing values
    shown as "–", numeric columns right-aligned."""

    def cell(value: Any) -> str:
        if pd.isna(value):
            return "–"
        return format(value, floatfmt) if isinstance(value, float) else str(value)

    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes]
    cells = frame.astype(object).map(cell)
    return io.markdown_table(cells, ["right" if is_number else "left" for is_number in numeric]).rstrip("\n")


def _facts_table(facts: Mapping[str, Any]) -> str:
    frame = pd.DataFrame({"": [str(key) for key in facts], "value": [str(value) for value in facts.values()]})
    return _markdown(frame)


def _devices(records: Sequence[PathLike]) -> str:
    """Where the run's scoring and merge jobs ran and with which weights, from the records that say so."""
    used: dict[tuple[str, str], int] = {}
    for path in records:
        if str(path).endswith(".json") and Path(path).is_file():
            record = read_json(path)
            if record.get("device") and record.get("dtype"):
                key = (str(record["device"]), str(record["dtype"]))
                used[key] = used.get(key, 0) + 1
    if not used:
        return "No record of this run says which device its jobs used."
    listed = ", ".join(
        f"{device} with {dtype} weights ({n} record{'' if n == 1 else 's'})"
        for (device, dtype), n in sorted(used.items())
    )
    text = f"Devices of the scoring and merge jobs, from their records: {listed}."
    if not any(device.startswith("cuda") for device, _ in used):
        text += (
            " No job of this run used a GPU, so the CUDA paths (bfloat16 weights under `dtype: auto`, lm-eval's "
            "`batch_size: auto`, mergekit on the GPU) were not exercised by it."
        )
    return text


def _provenance(check: ProvenanceCheck) -> list[str]:
    out = [
        "## Provenance",
        "Source: the run's records, each with the code version, CPU and library versions of the job that wrote it: "
        "`checkpoints/*/manifest.json`, `scores/experts/`, `features/models/*.npz`, `merges/*/*.json`. "
        + provenance_summary(check),
        _markdown(provenance_table(check)),
    ]
    out += [f"> **Warning:** {text}" for text in check.warnings]
    if check.stale:
        out.append(_markdown(stale_table(check)))
    return out


def _home_gains(table: pd.DataFrame) -> str:
    """Which experts beat the base on their home tasks (``home_gain``: home score − the base's on them)."""
    experts = table.iloc[1:]
    gains = ", ".join(f"{row.checkpoint} {row.home_gain:+.3f}" for row in experts.itertuples())
    beating = int((experts["home_gain"] > 0).sum())
    return (
        f"Gain over the base on the home tasks: {gains}. {beating} of {len(experts)} experts beat the base on "
        "their home tasks."
    )


def _predictor(fit: Mapping[str, Any]) -> str:
    families = pd.DataFrame(fit.get("families", []))
    families = families.rename(
        columns={"selected_score": "score of the merges it selects", "rmse": "RMSE", "spearman": "Spearman"}
    )
    return (
        f"Family chosen by cross-validation ({fit.get('protocol')} protocol): **{fit.get('family')}**, fitted on "
        f"{fit.get('rows')} label rows with {len(fit.get('features', []))} features and "
        f"{len(fit.get('operators', []))} operators.\n\n" + _markdown(families, floatfmt=".3f")
    )


def _costs(
    layout: RunLayout,
    base: str,
    experts: Sequence[str],
    tasks: Sequence[str],
    units: PathLike,
    records: Sequence[PathLike],
    decisions: pd.DataFrame,
    job_costs: pd.DataFrame,
    benchmarks: Benchmarks,
) -> list[str]:
    totals = break_even(layout, base, experts, tasks, records, decisions)
    per_operator = cost_summary(job_costs)
    decision_rules = ("probe_pass", "weight_sketch", "probe_features", "pair_features", "predictor", "merge_score")
    folders = [f"benchmarks/{rule}/" for rule in decision_rules if benchmarks.get(rule)]
    return [
        "## Cost: SimMerge against merge-and-evaluate",
        "Source: "
        + ", ".join(f"`{folder}`" for folder in folders)
        + f", `merges/*/*.json`, `{_relative(units, layout.root)}`. {COST_SOURCE}",
        MARGINAL_COST,
        _markdown(decisions.rename(columns=DECISION_COLUMNS), floatfmt=".1f"),
        pairs_total(decisions),
        "### Counting the labels that trained the predictor",
        break_even_text(totals),
        "### Merge jobs by operator",
        "From the same records and `benchmarks/merge_score/`: seconds are means per job, the "
        "last row sums over all jobs; scoring includes loading the merged model, overhead is the rest of the job "
        "(interpreter start, imports, task set-up, writing the record).",
        _markdown(per_operator.rename(columns=MERGE_COST_COLUMNS), floatfmt=".1f"),
    ]


def _transfers(summaries: Sequence[Mapping[str, Any]], source: str) -> list[str]:
    out = [
        "## Transfer from other runs",
        source + " Each source run's fitted predictor, unchanged, chooses for this run's pairs from this run's "
        "features; this run's labels score the choices. Two baselines: the fixed policy that was best on the source "
        "run (what a user knows when switching catalogs) and this run's best in hindsight.",
    ]
    for summary in summaries:
        table = transfer_table(summary)
        unseen = summary.get("operators_unseen_by_predictor") or []
        out += [
            f"From `{summary['source_run']}` ({len(summary['operators'])} shared operators"
            + (f"; left out, never seen by the predictor: {', '.join(unseen)}" if unseen else "")
            + "):",
            _markdown(table, floatfmt=".3f"),
        ]
    return out


def _search(
    table: pd.DataFrame,
    source: str,
    decisions: pd.DataFrame,
    job_costs: pd.DataFrame,
    cma_benchmarks: Sequence[PathLike] = (),
) -> list[str]:
    matched = evaluations_to_match(table)
    reached = "; ".join(
        f"{name}: {f'{items:.0f} items per pair' if items is not None else 'not within the budgets tried'}"
        for name, items in matched.items()
    )
    shown = table.assign(
        method=[
            f"{method} (bound)" if bound else method
            for method, bound in zip(table["method"], table["bound"], strict=True)
        ]
    ).drop(columns=["name", "bound", "reads_features"], errors="ignore")
    prices = unit_prices(job_costs)
    budgets = method_budgets(table, decisions, prices)
    return [
        "## Selection methods at a counted budget",
        source + " Every configured selection method (`predictor.methods`, entry-point group "
        "`simmerge.selection_methods`) on the held-out checkpoint folds, fitted per fold: SimMerge (one merge, no "
        "evaluation), SimMerge + k (its k best-predicted candidates merged and scored, the best kept), successive "
        "halving over the operator grid (every candidate merged, scored on a few items, the better half kept, items "
        "doubled, up to the given fraction of the search items), the label-free choice (every candidate merged and "
        "passed over its parents' home-task probes, the one with the least KL(parent ‖ merge) kept: no evaluation), "
        "the best fixed policy of the training pairs, one random draw and the oracle (a bound: it reads the held-out "
        "items). Each pair's items are split per task: "
        "methods evaluate on one half and every choice is scored on the other (regret against the best candidate on "
        "that half). `difference` is the paired difference from SimMerge over the same pairs; intervals are 95% "
        "bootstrap over pairs. Merges and items are means per pair (a randomised operator's seeds count as merges).",
        _markdown(shown, floatfmt=".3f"),
        *_cma_note(table, cma_benchmarks),
        f"Items per pair each search needs to reach SimMerge's held-out score: {reached or 'no search configured'}.",
        "### Every approach on the same axes",
        f"Per decision (one pair), priced with this run's merge jobs: {prices['merge_s']:.1f} s per merge (merging, "
        f"loading the merged model, job start-up), {prices['item_s']:.3f} s per item scored and "
        f"{prices['probe_s']:.2f} s per probe pass of a merge (one task's probes); a decision that reads "
        "the similarity features pays SimMerge's share of the probe passes, weight sketches, pair features and "
        "predictor fit per pair (the marginal cost above) — a fixed policy's only when its order rule reads the "
        "task-vector norms (then the whole share, an upper bound: those rules read the weight sketches alone; an "
        "order rule on the experts' own scores reads the catalog's expert scores, which every label is normalised "
        "by). The labels that trained the predictors are not counted here (see the break-even above).",
        _markdown(
            budgets.assign(score=budgets["score"].map("{:.3f}".format)).rename(columns=BUDGET_HEADINGS), floatfmt=".1f"
        ),
        _cheapest_match(budgets),
    ]


def _cma_note(table: pd.DataFrame, benchmarks: Sequence[PathLike]) -> list[str]:
    """What the cma_es rows are, and what their jobs took (rule cma_search)."""
    if not (table["name"] == "cma_es").any():
        return []
    timed = rule_seconds({"cma_search": benchmarks}, {"cma_search": "compare"}) if benchmarks else pd.DataFrame()
    took = (
        f" Its jobs took {timed['mean_s'].iloc[0]:.0f} s per pair on this machine (`benchmarks/cma_search/`, "
        f"{int(timed['jobs'].iloc[0])} jobs), the held-out scoring of each generation's best included."
        if len(timed)
        else ""
    )
    return [
        "`cma_es (N evals)` is CMA-ES (`predictor.cma_search`, rule `cma_search`) over the merge's continuous "
        "parameters after N evaluations: every candidate a real mergekit merge scored on the pair's search items, "
        "the best so far scored on the held-out items. Its merges are off the operator grid, so its regret against "
        "the grid's best candidate can be negative, and it reads no feature and fits nothing." + took
    ]


# Column headings of the budget table (simmerge.evaluate.costs.method_budgets) on the page.
BUDGET_HEADINGS = {
    "merges": "merges",
    "items": "items scored",
    "features_s": "features s",
    "merging_s": "merging s",
    "scoring_s": "scoring s",
    "probe_passes": "probe passes",
    "probing_s": "probing s",
    "seconds": "total s",
    "score": "held-out score",
    "bound": "bound",
}


def _cheapest_match(budgets: pd.DataFrame) -> str:
    """SimMerge's seconds per decision against the cheapest search that matches its held-out score, and against
    the strongest search (the best held-out score of any method that evaluates)."""
    simmerge = budgets[budgets["method"] == "simmerge"]
    searches = budgets[(budgets["items"] > 0) & ~budgets["bound"]]
    if simmerge.empty or searches.empty:
        return ""
    own = simmerge.iloc[0]

    def against(row: pd.Series) -> str:
        return (
            f"{row['method']} (held-out score {row['score']:.3f}): {row['seconds']:.0f} s per decision against "
            f"SimMerge's {own['seconds']:.0f} s ({row['seconds'] / own['seconds']:.1f}×)"
        )

    strongest = searches.sort_values("score", kind="stable").iloc[-1]
    matching = searches[searches["score"] >= own["score"] - 1e-12].sort_values("seconds", kind="stable")
    target = f"SimMerge's held-out score ({own['score']:.3f})"
    cheapest = (
        f"The cheapest search that matches {target} is {against(matching.iloc[0])}"
        if len(matching)
        else f"No search configured here reaches {target}"
    )
    return f"{cheapest}; the strongest search is {against(strongest)}."


def _multiway(table: pd.DataFrame, source: str) -> list[str]:
    columns = [
        column
        for column in (
            "set",
            "approach",
            "model",
            "size",
            "target_score",
            "predicted_target_score",
            "merges",
            "probe_passes",
            "evaluations",
        )
        if column in table.columns
    ]
    return [
        "## Multi-way merges",
        source + " Target score: mean over the set's target tasks of the merge's score ÷ the best candidate "
        "expert's. Merges: mergekit runs (SimMerge's include the planner's probe merges); evaluations: lm-eval "
        "runs needed to make the choice (the oracle and the best all-at-once operator are picked in hindsight).",
        _markdown(table[columns], floatfmt=".3f"),
    ]


def _bandit(table: pd.DataFrame, source: str) -> list[str]:
    def mean_sd(column: str, digits: int) -> list[str]:
        pairs = zip(table[column], table[f"{column}_sd"], strict=True)
        return [f"{mean:.{digits}f} ± {sd:.{digits}f}" for mean, sd in pairs]

    rows = pd.DataFrame(
        {
            "policy": table["policy"],
            "cumulative regret (mean ± sd)": mean_sd("cumulative_regret", 2),
            "mean reward (mean ± sd)": mean_sd("mean_reward", 3),
            "seeds": table["seeds"],
        }
    )
    return [
        "## Online: the contextual bandit (replay on the labels)",
        source + " Cumulative regret at the last round (oracle reward − the policy's, summed) and mean reward of the "
        "chosen merges, over the replay's seeds.",
        _markdown(rows),
    ]


def _item_files(run: Path) -> list[str]:
    """How much the per-item outcomes take on disk, by where they come from."""
    kinds = {
        "experts": "scores/experts/*/*.items.parquet",
        "2-way merges": "merges/*/*.items.parquet",
        "multi-way nodes": "multiway/*/scores/*.items.parquet",
        "live bandit rounds": "bandit/rounds/*.items.parquet",
        "label items": "label_items.parquet",
    }
    rows = []
    for kind, pattern in kinds.items():
        files = sorted(run.glob(pattern))
        if files:
            size = sum(path.stat().st_size for path in files)
            rows.append({"outcomes of": kind, "files": len(files), "MB": size / 1e6})
    if not rows:
        return []
    table = pd.DataFrame(rows)
    return [
        "## Per-item outcomes on disk",
        f"Source: the `*.items.parquet` files under {run.as_posix()}/ (one per score record, beside it). Total "
        f"{table['MB'].sum():.1f} MB.",
        _markdown(table, floatfmt=".2f"),
    ]


def _run_time(benchmarks: Benchmarks, stages: Mapping[str, str]) -> list[str]:
    per_rule = rule_seconds(benchmarks, stages)
    per_stage = per_rule.groupby("stage", sort=False).agg(jobs=("jobs", "sum"), job_s=("total_s", "sum"))
    per_stage["job time"] = [_duration(seconds) for seconds in per_stage["job_s"]]
    total = per_rule["total_s"].sum()
    return [
        "## Time the run took",
        f"Source: `benchmarks/<rule>/` ({int(per_rule['jobs'].sum())} benchmark files). Job-seconds: each job's "
        "wall seconds, summed; jobs run side by side, so the run's wall time is shorter (about the job-seconds ÷ "
        "the cores it kept busy). A job's seconds are those of its last run (a resumed or re-run job counts once).",
        f"All stages: {total:.0f} job-seconds ({_duration(total)}).",
        _markdown(per_stage.reset_index().rename(columns={"job_s": "job-seconds"}), floatfmt=".0f"),
        "Per rule (peak RSS: the largest resident memory of any of its jobs):",
        _markdown(per_rule.rename(columns=RULE_COLUMNS), floatfmt=".1f"),
    ]


def _duration(seconds: float) -> str:
    """Seconds as "1 h 05 min", "3 min 28 s" or "11 s"."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


__all__ = ["machine_facts", "results_page"]
