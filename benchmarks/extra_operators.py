"""Which of mergekit's other two-model methods should join the default grid: their spread and cost, measured.

For each given expert pair of a finished run, merges and scores every documented operator that is not in the run's
grid (``simmerge.core.config.AVAILABLE_OPERATORS``: sce, karcher, multislerp, della_linear, breadcrumbs_ties,
arcee_fusion, model_stock, ram, ramplus_tl and the Mixup-style linear; nearswap until it joined the default grid) with
:func:`simmerge.merges.merging.merge_score` — the body of rule ``merge_score``, both orders of an order-sensitive
operator, every seed of a randomised one — and compares each, item by item on the same items, with the run's grid
candidates of that pair (its labels): the paired difference from the pair's best grid candidate and from the
nearest one, with the paired standard error. An operator is worth a place in the grid when it is **distinct** (more
than ``tie_z`` paired standard errors from every grid candidate on some pair: it adds spread, not a copy) and
**competitive** (within ``tie_z`` standard errors of the pair's best grid candidate, or above it, on some pair);
its merge and scoring seconds say what it would add to the grid. The operators join one at a time, each judged
again against the grid plus those that joined before it, so that two operators finding the same merge do not both
join. Writes docs/extra-operators.md.

    .venv/bin/python benchmarks/extra_operators.py --run results/default --pairs emoji,rhyme de,fr [--threads 1]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simmerge.catalog.build import checkpoint_dir
from simmerge.core.config import AVAILABLE_OPERATORS
from simmerge.core.io import markdown_table
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.evaluate.paired import difference_of, task_mean, unit_items
from simmerge.evaluate.predictor import training_rows
from simmerge.evaluate.selection import unit_of, units_of_rows
from simmerge.merges.cma import best_parent_metrics
from simmerge.merges.items import ITEM_KEY
from simmerge.merges.merging import merge_score
from simmerge.merges.operators import load_operators
from simmerge.merges.scoring import read_scores
from simmerge.run import TASK_DIR, load

REPO = Path(__file__).resolve().parent.parent


def item_vector(items: pd.DataFrame, keys: pd.DataFrame, best: dict[str, float]) -> np.ndarray:
    """A merge's per-item outcomes over the better parent's task metric, mean over its seeds, on ``keys``."""
    per_item = items.groupby(ITEM_KEY, sort=False)["score"].mean().reset_index()
    joined = keys.merge(per_item, on=ITEM_KEY, how="left", validate="1:1")
    if joined["score"].isna().any():
        raise KeyError("the merge was not scored on every item of the pair's labels")
    return joined["score"].to_numpy(float) / joined["task"].map(best).to_numpy(float)


def judged(vector: np.ndarray, against: dict[str, np.ndarray], tasks: np.ndarray) -> dict:
    """A candidate's item vector against a set of candidates of its pair: the paired difference from their best,
    and |difference| / SE from the nearest."""
    scores = {name: task_mean(other, tasks) for name, other in against.items()}
    top = max(scores, key=scores.get)
    versus_best = difference_of(vector, against[top], tasks)
    nearest = min(
        (difference_of(vector, other, tasks) for other in against.values()),
        key=lambda d: abs(d.difference) / d.stderr if d.stderr > 0 else 0.0,
    )
    return {
        "grid_best": scores[top],
        "grid_best_operator": top,
        "vs_best": versus_best.difference,
        "vs_best_se": versus_best.stderr,
        "nearest_z": abs(nearest.difference) / nearest.stderr if nearest.stderr > 0 else 0.0,
    }


def measure_pair(
    catalog, layout: RunLayout, labels, label_items, a: str, b: str, threads: int, operators: list[str]
) -> dict:
    """Every operator of ``operators`` merged and scored on the pair (a, b): its candidates' rows, judged against
    the run's grid, their item vectors, and the grid's, on the pair's label items."""
    rows = training_rows(labels)
    unit = unit_of(a, b)
    grid = unit_items(rows, label_items, units_of_rows(rows))[unit]
    grid_vectors = {"@".join(part for part in key if part): vector for key, vector in grid.vectors.items()}
    best_parent = best_parent_metrics(labels, a, b)
    tasks = catalog.merge_tasks(a, b)
    data = {task: layout.task_data(task, "eval") for task in tasks}
    dirs = {name: checkpoint_dir(layout.checkpoint_manifest(name)) for name in (a, b, catalog.base.name)}
    parents = {name: read_scores([layout.expert_scores(name, task) for task in tasks])[name] for name in (a, b)}
    extras = load_operators(operators)
    out, vectors = [], []
    for name, operator in extras.items():
        for first, second in [(a, b), (b, a)] if operator.order_sensitive else [(a, b)]:
            record = merge_score(
                operator,
                dirs[first],
                dirs[second],
                dirs[catalog.base.name],
                parent_scores=(parents[first], parents[second]),
                task_dir=REPO / TASK_DIR,
                data_files=data,
                seeds=catalog.merge_seeds if operator.randomised else [0],
                threads=threads,
            )
            anchor = first if operator.order_sensitive else ""
            if record["status"] != "ok":
                out.append({"pair": unit, "operator": name, "anchor": anchor, "status": record["status"]})
                continue
            vector = item_vector(record.pop("items"), grid.keys, best_parent)
            vectors.append(vector)
            out.append(
                {
                    "pair": unit,
                    "operator": name,
                    "anchor": anchor,
                    "status": "ok",
                    "score": task_mean(vector, grid.tasks),
                    **judged(vector, grid_vectors, grid.tasks),
                    "merge_s": sum(run["wall_seconds"] for run in record["runs"]),
                    "score_s": sum(run["eval_seconds"] for run in record["runs"]),
                    "merges": len(record["runs"]),
                    "items": len(vector),
                }
            )
            print(out[-1], flush=True)
    ok = [row for row in out if row["status"] == "ok"]
    return {
        "unit": unit,
        "tasks": grid.tasks,
        "grid": grid_vectors,
        "rows": out,
        "candidates": [
            (row["operator"], f"{row['operator']}@{row['anchor']}".rstrip("@"), vector)
            for row, vector in zip(ok, vectors, strict=True)
        ],
    }


def both_counts(pairs: list[dict], operators: list[str], joined: list[str], z: float) -> dict[str, int]:
    """Per operator of ``operators``: on how many pairs one of its candidates is distinct from, and competitive
    with, every candidate of the grid plus the operators in ``joined``."""
    counts = dict.fromkeys(operators, 0)
    for pair in pairs:
        against = dict(pair["grid"])
        against.update({label: vector for operator, label, vector in pair["candidates"] if operator in joined})
        for operator in operators:
            verdicts = [
                judged(vector, against, pair["tasks"]) for name, _, vector in pair["candidates"] if name == operator
            ]
            counts[operator] += any(v["nearest_z"] > z and v["vs_best"] > -z * v["vs_best_se"] for v in verdicts)
    return counts


def joining_order(pairs: list[dict], operators: list[str], z: float) -> list[tuple[str, int]]:
    """The operators that join the grid, in order, each with the pairs where it is distinct and competitive
    against the grid plus those that joined before it: the one with the most such pairs joins first (the
    cheaper on a tie, by the order of ``operators``), then the others are judged again, until none has a pair."""
    joined: list[tuple[str, int]] = []
    while remaining := [operator for operator in operators if operator not in dict(joined)]:
        counts = both_counts(pairs, remaining, [name for name, _ in joined], z)
        best = max(remaining, key=lambda operator: counts[operator])
        if counts[best] == 0:
            break
        joined.append((best, counts[best]))
    return joined


def decide(per_candidate: pd.DataFrame, pairs: list[dict], z: float) -> pd.DataFrame:
    """Per operator over the pairs: mean score and difference from each pair's best grid candidate, on how many
    pairs it is distinct from every grid candidate and competitive with the best, its cost, and the decision."""
    ok = per_candidate[per_candidate["status"] == "ok"].copy()
    ok["distinct"] = ok["nearest_z"] > z
    ok["competitive"] = ok["vs_best"] > -z * ok["vs_best_se"]
    table = ok.groupby("operator", sort=False).agg(
        candidates=("pair", "size"),
        score=("score", "mean"),
        vs_grid_best=("vs_best", "mean"),
        distinct=("distinct", "sum"),
        competitive=("competitive", "sum"),
        merge_s=("merge_s", "mean"),
        score_s=("score_s", "mean"),
    )
    table.insert(5, "both", pd.Series(both_counts(pairs, list(table.index), [], z)))
    failed = per_candidate[per_candidate["status"] != "ok"].groupby("operator").size()
    table["failed"] = failed.reindex(table.index, fill_value=0)
    # cheaper first: the tie-break of the joining order
    by_cost = (table["merge_s"] + table["score_s"]).sort_values(kind="stable").index.tolist()
    joined = joining_order(pairs, by_cost, z)
    order = {name: position for position, (name, _) in enumerate(joined, start=1)}
    table["both_after_joined"] = [
        dict(joined).get(name, both_counts(pairs, [name], list(order), z)[name]) for name in table.index
    ]
    table["joins"] = [f"yes ({order[name]})" if name in order else "no" for name in table.index]
    return table.reset_index()


def page_table(frame: pd.DataFrame) -> str:
    """A table for the page: numbers to three decimals, right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) for column in frame]
    cells = frame.apply(
        lambda column: (
            column.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
            if pd.api.types.is_numeric_dtype(column)
            else column.astype(str)
        )
    )
    return markdown_table(cells, ["r" if is_number else "l" for is_number in numeric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--pairs", nargs="+", default=["emoji,rhyme", "de,fr"], help="a,b per pair")
    parser.add_argument(
        "--operators", nargs="+", help="AVAILABLE_OPERATORS entries to measure (default: every one not in the grid)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="pairs measured at once, one process each")
    parser.add_argument("--out", default=str(REPO / "docs" / "extra-operators.md"))
    args = parser.parse_args()
    catalog = load(yaml.safe_load(Path(args.config).read_text(encoding="utf-8")))
    outside_grid = [entry["name"] for entry in AVAILABLE_OPERATORS if entry["name"] not in catalog.operators]
    operators = args.operators or outside_grid
    unknown = sorted(set(operators) - set(outside_grid))
    if unknown:
        parser.error(f"--operators {unknown}: not in AVAILABLE_OPERATORS outside the grid ({', '.join(outside_grid)})")
    layout = RunLayout(Path(args.run))
    labels, label_items = pd.read_parquet(layout.labels_parquet), pd.read_parquet(layout.label_items)
    pairs = [tuple(pair.split(",")) for pair in args.pairs]
    labelled = set(zip(labels["a"], labels["b"], strict=True))
    for pair in pairs:
        if len(pair) != 2 or pair not in labelled:
            parser.error(f"--pairs {','.join(pair)}: not an expert pair with labels in {layout.labels_parquet}")
    arguments = [(catalog, layout, labels, label_items, a, b, args.threads, operators) for a, b in pairs]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        measured = list(pool.map(measure_pair, *zip(*arguments, strict=True)))
    per_candidate = pd.DataFrame([row for pair in measured for row in pair["rows"]])
    measured_what = (
        f"The operators {', '.join(operators)}"
        if args.operators
        else "Every operator of `AVAILABLE_OPERATORS` not in the run's grid"
    )
    z = catalog.config.merges.tie_z
    table = decide(per_candidate, measured, z)
    shown = per_candidate[per_candidate["status"] == "ok"].drop(columns=["status"])
    lines = [
        f"# mergekit's other two-model methods: spread and cost on `{args.run}`",
        "",
        "Generated by `benchmarks/extra_operators.py` (do not edit) from a finished run's labels. Machine: "
        f"{describe_machine()}, {args.threads} torch thread(s) per merge job. Command: `.venv/bin/python "
        f"benchmarks/extra_operators.py --run {args.run} --config {args.config} --pairs {' '.join(args.pairs)} "
        + (f"--operators {' '.join(args.operators)} " if args.operators else "")
        + f"--threads {args.threads} --jobs {args.jobs}`.",
        "",
        f"{measured_what}, merged and scored on each pair (both orders "
        "of an order-sensitive one, every seed of a randomised one), compared on the same items with the run's grid "
        f"candidates of that pair. `vs grid best`: paired difference from the pair's best grid candidate; "
        f"`nearest z`: paired |difference| / SE from the closest grid candidate. **distinct**: nearest z > {z:g} "
        f"(`merges.tie_z`); **competitive**: not below the grid's best by more than {z:g} paired SE; `both`: pairs "
        "where one of its candidates is both. The operators join one at a time: the one with the most such pairs "
        "(the cheaper on a tie), then every other is judged again against the grid plus those that joined "
        "(`both_after_joined`), until none is both on any pair; `joins` gives the order.",
        "",
        page_table(table),
        "",
        "Per candidate:",
        "",
        page_table(shown),
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
