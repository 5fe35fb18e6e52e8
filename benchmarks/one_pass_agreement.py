"""Does exact match decided in one teacher-forced pass agree with lm-eval's generation, item by item — and how much
faster is it? Measured on a built run of the default catalog (its base, its experts, and merges of its expert pairs).

Every model is scored twice by :func:`simmerge.merges.scoring.score_checkpoint` on the same items of the
generative built-in skills: ``exact_match="generate"`` (lm-eval's generate_until, greedy, stop at the newline) and
``exact_match="one_pass"`` (one loglikelihood request of answer + newline, correct when every token is the
argmax). The base and the experts are scored on every generative skill of the config; the merges — three
operators on each unordered expert pair, merged with mergekit into a scratch folder — on the generative home tasks
of the pair, or on the first generative skill when the pair has none. Writes docs/one-pass-agreement.md (agreement
per model and overall, every disagreeing item, the seconds of each mode).

    .venv/bin/python benchmarks/one_pass_agreement.py [--run results/default] [--config config/config.yaml]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from simmerge.catalog.build import checkpoint_dir
from simmerge.core.io import markdown_table
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.merges.merging import default_scratch_dir, merge_pair
from simmerge.merges.scoring import score_checkpoint
from simmerge.merges.tasks import resolved_task_cfg, task_files, task_name
from simmerge.run import TASK_DIR, load

REPO = Path(__file__).resolve().parent.parent
MERGE_OPERATORS = ("linear", "ta_w100", "nuslerp_w70")


def generative_skills(skills: list[str]) -> list[str]:
    declared = task_files(REPO / TASK_DIR)
    return [s for s in skills if resolved_task_cfg(declared[task_name(s)]).get("output_type") == "generate_until"]


def both_modes(model: Path, name: str, data: dict[str, Path], threads: int) -> tuple[pd.DataFrame, dict]:
    """Items of both modes side by side, and the evaluation seconds of each (model load excluded)."""
    tables, seconds = {}, {}
    for mode in ("generate", "one_pass"):
        record = score_checkpoint(model, REPO / TASK_DIR, data, threads=threads, exact_match=mode, name=name)
        seconds[mode] = record["wall_seconds"] - record["load_seconds"]
        tables[mode] = pd.concat(record["items"].values(), ignore_index=True)
    keys = ["task", "doc_id", "item_id", "prompt_hash"]
    joined = tables["generate"][[*keys, "score", "output"]].merge(
        tables["one_pass"][[*keys, "score", "likelihood"]], on=keys, suffixes=("_generate", "_one_pass"), validate="1:1"
    )
    if len(joined) != len(tables["generate"]):
        raise RuntimeError(f"{name}: the two modes scored different items")
    return joined.assign(model=name), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "docs" / "one-pass-agreement.md"))
    args = parser.parse_args()
    catalog = load(yaml.safe_load(Path(args.config).read_text(encoding="utf-8")))
    layout = RunLayout(Path(args.run))
    skills = generative_skills(list(catalog.config.tasks))
    data = {skill: layout.task_data(skill, "eval") for skill in skills}
    models = {name: checkpoint_dir(layout.checkpoint_manifest(name)) for name in catalog.names}

    parts, timing = [], []
    started = time.perf_counter()
    for name, path in models.items():
        joined, seconds = both_modes(path, name, data, args.threads)
        parts.append(joined.assign(kind="expert" if name != catalog.base.name else "base"))
        timing.append({"model": name, **seconds, "items": len(joined)})
        print(name, seconds, flush=True)
    base = models[catalog.base.name]
    for (a, b), operator in itertools.product(itertools.combinations(catalog.expert_names, 2), MERGE_OPERATORS):
        with tempfile.TemporaryDirectory(prefix="simmerge-agreement-", dir=default_scratch_dir()) as scratch:
            merged = Path(scratch) / "merged"
            record = merge_pair(catalog.operators[operator], models[a], models[b], base, merged, seed=0)
            if record["status"] != "ok":
                raise RuntimeError(f"{operator}({a}, {b}) failed: {record['error']}")
            name = f"{operator}({a}, {b})"
            homes = [task for task in catalog.merge_tasks(a, b) if task in skills] or skills[:1]
            joined, seconds = both_modes(merged, name, {t: data[t] for t in homes}, args.threads)
        parts.append(joined.assign(kind="merge"))
        timing.append({"model": name, **seconds, "items": len(joined)})
        print(name, seconds, flush=True)
    items = pd.concat(parts, ignore_index=True)
    items["agree"] = items["score_generate"] == items["score_one_pass"]
    times = pd.DataFrame(timing)
    write_page(items, times, args, time.perf_counter() - started, skills)


def write_page(
    items: pd.DataFrame, times: pd.DataFrame, args: argparse.Namespace, wall: float, skills: list[str]
) -> None:
    per_model = (
        items.groupby("model", sort=False)
        .agg(
            kind=("kind", "first"),
            items=("agree", "size"),
            agree=("agree", "sum"),
            generate=("score_generate", "mean"),
            one_pass=("score_one_pass", "mean"),
        )
        .join(times.set_index("model")[["generate", "one_pass"]], rsuffix="_s")
        .reset_index()
    )
    rows = [
        [
            row.model,
            row.kind,
            str(row.items),
            f"{row.agree / row.items:.4f}",
            f"{row.generate:.3f}",
            f"{row.one_pass:.3f}",
            f"{row.generate_s:.1f}",
            f"{row.one_pass_s:.1f}",
        ]
        for row in per_model.itertuples()
    ]
    table = pd.DataFrame(
        rows, columns=["model", "kind", "items", "agreement", "EM generate", "EM one pass", "s generate", "s one pass"]
    )
    total, agree = len(items), int(items["agree"].sum())
    merges = items[items["kind"] == "merge"]
    disagree = items[~items["agree"]]
    lines = [
        "# One-pass exact match against generation, item by item",
        "",
        "Generated by `benchmarks/one_pass_agreement.py` (do not edit) from a built run of the default catalog.",
        f"Machine: {describe_machine()}, {args.threads} torch threads, fp32. Command: `.venv/bin/python "
        f"benchmarks/one_pass_agreement.py --run {args.run} --config {args.config} --threads {args.threads}` "
        f"({wall / 60:.0f} min).",
        "",
        f"**Agreement: {agree} of {total} items ({agree / total:.2%})**; on the "
        f"{merges['model'].nunique()} merges alone {int(merges['agree'].sum())} of {len(merges)} "
        f"({merges['agree'].mean():.2%}). Scoring time, evaluation only (model load excluded): generation "
        f"{times['generate'].sum():.0f} s, one pass {times['one_pass'].sum():.0f} s — "
        f"{times['generate'].sum() / times['one_pass'].sum():.1f}× faster.",
        "",
        "Experts and base: every generative skill of the config; merges (linear, ta_w100, nuslerp_w70 on each "
        f"unordered expert pair): the pair's generative home tasks, else {skills[0]}. Generation decides exact "
        "match on the stripped output, "
        "ignoring case; one pass is case-sensitive and needs the newline to be the argmax after the answer.",
        "",
        markdown_table(table, ["l", "l", "r", "r", "r", "r", "r", "r"]),
        "",
    ]
    if len(disagree):
        shown = disagree.head(50)
        lines += [
            "## Items on which the modes disagree",
            "",
            markdown_table(
                pd.DataFrame(
                    {
                        "model": shown["model"],
                        "task": shown["task"],
                        "item": shown["item_id"],
                        "generated": shown["output"].map(repr),
                        "EM generate": shown["score_generate"].map("{:.0f}".format),
                        "EM one pass": shown["score_one_pass"].map("{:.0f}".format),
                    }
                ),
                ["l", "l", "l", "l", "r", "r"],
            ),
        ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: agreement {agree}/{total}")


if __name__ == "__main__":
    main()
