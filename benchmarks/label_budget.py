"""What each stage of a finished run cost, and what cheaper label budgets would cost and keep of the labels.

From a finished run's own files: job-seconds per rule and stage (its Snakemake benchmark files); then, for each
budget — fewer items per task, one seed of the randomised operators, fewer operators, and their combinations —
the labels rebuilt from the run's per-item outcomes (:mod:`simmerge.evaluate.budget`) and how well they separate
the operators of each pair under the paired rule, beside the cost the budget would have had: every merge job's
measured merge, load, scoring and overhead seconds, the scoring part scaled by the items kept, the merges by the
seeds kept (expert scoring likewise), every other job as measured. The run's wall time scales with its
job-seconds (same parallelism). Writes docs/label-budget.md.

    .venv/bin/python benchmarks/label_budget.py --run results/default --wall-minutes 150
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
import yaml

from simmerge.core.io import markdown_table, read_json
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.evaluate.budget import Budget, budget_labels, read_run_outcomes, separation
from simmerge.evaluate.costs import merge_costs, rule_seconds
from simmerge.evaluate.labels import labels_table
from simmerge.evaluate.ranking import best_per_pair
from simmerge.run import load

REPO = Path(__file__).resolve().parent.parent


def rule_stages() -> dict[str, str]:
    """Rule → the rules/<stage>.smk file that defines it."""
    stages = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for name in re.findall(r"^(?:checkpoint|rule) (\w+):", path.read_text(encoding="utf-8"), flags=re.M):
            stages[name] = path.stem
    return stages


def job_seconds(layout: RunLayout) -> pd.DataFrame:
    """``stage``, ``rule``, ``jobs``, ``job_s``: every rule's summed job seconds from the run's benchmark files
    (:func:`simmerge.evaluate.costs.rule_seconds`, as the results page reads them)."""
    folders = sorted(p for p in (layout.root / "benchmarks").iterdir() if p.is_dir())
    benchmarks = {folder.name: sorted(folder.rglob("*.tsv")) for folder in folders}
    stages = {rule: stage for rule, stage in rule_stages().items() if rule in benchmarks}
    table = rule_seconds(benchmarks, {**stages, **{rule: "?" for rule in benchmarks if rule not in stages}})
    return table.rename(columns={"total_s": "job_s"})[["stage", "rule", "jobs", "job_s"]]


def expert_scoring_seconds(layout: RunLayout) -> float:
    """Seconds of expert scoring that scale with the items: the records' evaluation less model loading."""
    return sum(
        float(record.get("wall_seconds") or 0.0) - float(record.get("load_seconds") or 0.0)
        for record in map(read_json, layout.root.glob("scores/experts/*/*.json"))
    )


def budget_seconds(costs: pd.DataFrame, expert_scaling: float, budget: Budget, seeds: int) -> float:
    """Job-seconds of the merge grid and the expert scores under a budget (every other job as measured)."""
    kept = costs if budget.operators is None else costs[costs["operator"].isin(budget.operators)]
    runs = kept["n_merges"].clip(upper=budget.n_seeds or seeds) / kept["n_merges"]
    scoring = kept["load_s"] + (kept["eval_s"] - kept["load_s"]) * budget.fraction
    grid = (kept["overhead_s"] + (kept["merge_s"] + scoring) * runs).sum()
    return float(grid) - expert_scaling * (1 - budget.fraction)


def stage_floor(stages: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Per stage: ``jobs``, ``job_s`` as run, ``startup_s`` (what the merge jobs spent outside merging, scoring and
    the parent-drift passes: interpreter start-up, imports, I/O — measured in their records, so 0 for the other
    stages, whose start-up stays in their floor) and ``floor_s``: the job-seconds left if every merge job paid no
    start-up, the models' own work (fine-tuning, merging, scoring, probe passes) unchanged."""
    by_stage = stages.groupby("stage", sort=False).agg(jobs=("jobs", "sum"), job_s=("job_s", "sum")).reset_index()
    startup = float((costs["overhead_s"] - costs["drift_s"]).clip(lower=0).sum())
    by_stage["startup_s"] = [startup if stage == "merges" else 0.0 for stage in by_stage["stage"]]
    by_stage["floor_s"] = by_stage["job_s"] - by_stage["startup_s"]
    return by_stage


# Stages the verdict (labels, predictor, comparison, report) does not need: the default target could leave them out.
OPTIONAL_STAGES = ("multiway", "bandit")


def reach_lines(floor: pd.DataFrame, wall_minutes: float, cores: int, target: float) -> list[str]:
    """What would bring the run to ``target`` minutes of wall time: more cores at the run's own packing or at perfect
    packing, or the stages the verdict does not need left out of the target on these cores."""
    job_s, floor_s = float(floor["job_s"].sum()), float(floor["floor_s"].sum())
    packing = job_s / (cores * wall_minutes * 60)
    minutes = {stage: s / (cores * packing * 60) for stage, s in zip(floor["stage"], floor["job_s"], strict=True)}
    optional = [stage for stage in OPTIONAL_STAGES if stage in minutes]
    without = wall_minutes - sum(minutes[stage] for stage in optional)
    floor_without = (floor_s - float(floor.loc[floor["stage"].isin(optional), "floor_s"].sum())) / (cores * 60)
    return [
        f"- Packing: the run kept its {cores} cores {packing:.0%} busy ({job_s / 3600:.2f} job-hours in "
        f"{wall_minutes:g} min).",
        f"- Floor on {cores} cores: {floor_s / 3600:.2f} job-hours with no merge-job start-up = "
        f"{floor_s / (cores * 60):.0f} min with every core busy all the time, {floor_s / (cores * packing * 60):.0f} "
        f"min at the run's packing; {target:g} min is {'above' if floor_s / (cores * 60) <= target else 'below'} "
        "that floor.",
        f"- Cores for {target:g} min: {job_s / (packing * target * 60):.1f} at the run's packing and start-up, "
        f"{floor_s / (target * 60):.1f} at the floor with perfect packing.",
        f"- The stages the verdict does not need ({', '.join(optional) or 'none here'}) left out of the target on "
        f"{cores} cores: {without:.0f} min at the run's packing, {floor_without:.0f} min at the floor with perfect "
        "packing.",
    ]


def table_text(table: pd.DataFrame) -> str:
    """A table as Markdown: text columns left, numbers right, floats with 2 decimals."""
    cells = table.apply(lambda col: col.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)))
    align = ["right" if pd.api.types.is_numeric_dtype(table[c]) else "left" for c in table.columns]
    return markdown_table(cells, align)


def partial_labels(layout: RunLayout, config: str | None) -> pd.DataFrame:
    """The labels of the ordered pairs whose every operator has a merge record, as rule labels builds them."""
    if config is None:
        raise SystemExit(f"{layout.labels_parquet} is missing: give --config to analyse the pairs merged so far")
    catalog = load(yaml.safe_load(Path(config).read_text(encoding="utf-8")))
    grid = catalog.label_grid()
    done = {
        (a, b)
        for a, b in catalog.ordered_pairs
        if all(
            layout.merge_items(*entry["merged"], entry["operator"]).is_file()
            for entry in grid
            if (entry["a"], entry["b"]) == (a, b)
        )
        and layout.pair_features(a, b).is_file()
    }
    grid = [entry for entry in grid if (entry["a"], entry["b"]) in done]
    if not grid:
        raise SystemExit(f"no ordered pair of {layout.root} has every operator merged yet")
    records = sorted({str(layout.merge_record(*e["merged"], e["operator"])) for e in grid})
    parents = sorted(
        {str(layout.expert_items(name, task)) for a, b in done for task in catalog.merge_tasks(a, b) for name in (a, b)}
    )
    features = [str(layout.pair_features(a, b)) for a, b in sorted(done)]
    labels, _ = labels_table(features, records, grid, parents)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument(
        "--wall-minutes", type=float, help="the run's measured wall time (default: job-hours / --cores, a lower bound)"
    )
    parser.add_argument("--cores", type=int, default=2, help="cores the run had")
    parser.add_argument(
        "--config",
        help="the run's config: with it, a run whose grid is not finished is analysed on its complete pairs (every "
        "operator merged), labels built as rule labels builds them",
    )
    parser.add_argument("--target-minutes", type=float, default=75.0, help="the wall time to reach (#20: 75)")
    parser.add_argument("--z", type=float, default=1.0, help="tie band (merges.tie_z)")
    parser.add_argument("--draws", type=int, default=5, help="item subsets per budget that drops items")
    parser.add_argument("--out", default=str(REPO / "docs" / "label-budget.md"))
    args = parser.parse_args()
    layout = RunLayout(Path(args.run))
    partial = not layout.labels_parquet.is_file()
    outcomes = read_run_outcomes(layout.root, labels=partial_labels(layout, args.config) if partial else None)
    full_scores, full_items = budget_labels(outcomes, Budget("full"))
    full = best_per_pair(full_scores, full_items, z=args.z)
    tied = {op for ops in full["tied"] for op in ops.split(";")}
    operators = list(dict.fromkeys(outcomes.labels["operator"]))
    winning = tuple(op for op in operators if op in tied)
    never = [op for op in operators if op not in tied]
    budgets = [
        Budget("as run"),
        Budget("1/2 of the items", 0.5),
        Budget("1/3 of the items", 1 / 3),
        Budget("1 seed", n_seeds=1),
        Budget("never-tied operators dropped", operators=winning),
        Budget("1/2 items, 1 seed", 0.5, 1),
        Budget("1/2 items, 1 seed, never-tied dropped", 0.5, 1, winning),
        Budget("1/3 items, 1 seed, never-tied dropped", 1 / 3, 1, winning),
    ]
    table = separation(outcomes, budgets, z=args.z, draws=args.draws)

    stages = job_seconds(layout)
    total_s = float(stages["job_s"].sum())
    costs = merge_costs(layout, sorted(layout.root.glob("merges/*/*.json")))
    seeds = int(costs["n_merges"].max())
    expert_scaling = expert_scoring_seconds(layout)
    as_run = budget_seconds(costs, expert_scaling, Budget("as run"), seeds)
    table["job_hours"] = [(total_s - as_run + budget_seconds(costs, expert_scaling, b, seeds)) / 3600 for b in budgets]
    wall_per_job_second = (args.wall_minutes / total_s) if args.wall_minutes else 1 / (60 * args.cores)
    table["wall_minutes"] = table["job_hours"] * 3600 * wall_per_job_second
    shown = table.assign(
        items=[f"{b.fraction:.2f}" for b in budgets],
        seeds=[str(b.n_seeds or seeds) for b in budgets],
        separated=[
            f"{m:.1f} ± {s:.1f}" if s else f"{m:.0f}"
            for m, s in zip(table["separated"], table["separated_sd"], strict=True)
        ],
    )[
        [
            "budget",
            "items",
            "seeds",
            "n_operators",
            "pairs",
            "separated",
            "separated_unpaired",
            "median_tied",
            "same_best",
            "best_in_full_tie",
            "job_hours",
            "wall_minutes",
        ]
    ]
    floor = stage_floor(stages, costs)
    by_stage = floor[["stage", "jobs", "job_s"]].assign(share=(floor["job_s"] / total_s).round(3))
    full_row = table.iloc[0]
    wall = args.wall_minutes or total_s / (60 * args.cores)
    text = [
        "# Label budget: what each stage costs, and what cheaper labels keep",
        "",
        f"Generated by `benchmarks/label_budget.py --run {args.run}"
        + (f" --wall-minutes {args.wall_minutes:g}" if args.wall_minutes else "")
        + "` from that "
        f"run's own files: its benchmark files (job-seconds), merge records (merge / scoring / overhead seconds "
        f"per job) and per-item outcomes (labels rebuilt per budget, `simmerge.evaluate.budget`). "
        f"Machine: {describe_machine()}.",
        "",
        "## Where the time goes",
        "",
        f"{len(stages)} rules, {int(stages['jobs'].sum())} jobs, {total_s / 3600:.2f} job-hours; "
        + (
            f"measured wall time {args.wall_minutes:g} min."
            if args.wall_minutes
            else f"wall time not given: wall minutes below are job-hours / {args.cores} cores (a lower bound)."
        ),
        "",
        table_text(by_stage.assign(job_s=by_stage["job_s"].round(0).astype(int))),
        table_text(stages.assign(job_s=stages["job_s"].round(0).astype(int))),
        "",
        f"## The floor of each stage, and what would reach {args.target_minutes:g} minutes",
        "",
        "`startup_s`: what the merge jobs spent outside merging, scoring and their parent-drift probe passes "
        "(interpreter start-up, imports, reading and writing), from their records; the other stages' start-up is "
        "not measured apart and stays in their floor. `floor_s`: the stage without that start-up, the models' own "
        "work unchanged — fewer items or seeds would cut it further but make the labels noisier (next section).",
        "",
        table_text(floor.assign(**{c: floor[c].round(0).astype(int) for c in ("job_s", "startup_s", "floor_s")})),
        *reach_lines(floor, wall, args.cores, args.target_minutes),
        "",
        "## Budgets",
        "",
        *(
            [
                f"The run's grid was not finished: these are the {len(outcomes.labels[['a', 'b']].drop_duplicates())} "
                "ordered pairs whose every operator was merged, labelled as rule labels labels them.",
                "",
            ]
            if partial
            else []
        ),
        f"Each budget's labels are rebuilt from the run's per-item outcomes: a seeded subset of each task's items "
        f"(the same for every model; {args.draws} subsets, mean ± sd), the first seed of each randomised operator "
        f"(charged the seed spread measured on all {seeds} seeds), and the operators kept. `separated`: ordered "
        f"pairs whose best operator beats the runner-up by more than {args.z:g} paired standard errors "
        f"(`separated_unpaired`: the old unpaired rule); `same_best`: pairs whose best operator is the run's; "
        f"`best_in_full_tie`: pairs whose best is within noise of the run's best (the run's paired rule). "
        f"Never-tied operators (within noise of the best on no pair): {', '.join(never) or 'none'}. Cost: job-hours "
        f"with the merge grid and the expert scores re-costed, every other job as measured; wall minutes scale "
        f"the run's wall time by job-hours.",
        "",
        table_text(shown),
        f"As run: {full_row['separated']:.0f} of {full_row['pairs']:.0f} ordered pairs separate under the paired "
        f"rule, {full_row['separated_unpaired']:.0f} under the unpaired one. A budget keeps the labels as precise "
        f"as the old rule called them when its paired `separated` is at least {full_row['separated_unpaired']:.0f}.",
    ]
    Path(args.out).write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()
