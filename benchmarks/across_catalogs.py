"""Evidence across catalogs: every run's predictor transferred, unchanged, to every other run under each feature set,
and every run's learning curve — from finished runs or their exports (reference/). Writes
docs/across-catalogs.md.

Each number comes from the CLI the page names (`simmerge transfer`, `simmerge learning-curve`), run here into a
temporary folder and read back from its summary files, so a reader re-runs any line of the page by hand.

    .venv/bin/python benchmarks/across_catalogs.py --run reference/default --run reference/disjoint
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from simmerge.core.io import markdown_table
from simmerge.core.provenance import describe_machine
from simmerge.evaluate.learning_curve import break_even

REPO = Path(__file__).resolve().parent.parent
FEATURE_SETS = ("all", "dimensionless", "ranked")
TEXT_COLUMNS = dict.fromkeys(["from", "to", "features", "source's best fixed", "target's best fixed"], "left")


def simmerge(*arguments: str) -> None:
    """Run one ``simmerge`` command of this checkout; its own error message ends the benchmark."""
    done = subprocess.run([sys.executable, "-m", "simmerge.cli", *arguments], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"`simmerge {' '.join(arguments)}` failed:\n{done.stderr.strip()}")


def interval(numbers: dict, key: str) -> str:
    return f"{numbers[key]:+.3f} [{numbers[f'{key}_lo']:+.3f}, {numbers[f'{key}_hi']:+.3f}]"


def transfer_rows(runs: list[str], scratch: Path, seed: int) -> pd.DataFrame:
    """One row per (source, target, feature set): SimMerge − best fixed against the source's best fixed policy
    and the target's in hindsight, paired over items, 95 % intervals over pairs and items."""
    rows = []
    for source, target in itertools.permutations(runs, 2):
        for features in FEATURE_SETS:
            out = scratch / f"transfer_{len(rows)}"
            simmerge(
                "transfer",
                "--from",
                source,
                "--to",
                target,
                "--features",
                features,
                "--seed",
                str(seed),
                "-o",
                str(out),
            )
            summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            known, hindsight = summary["source"], summary["hindsight"]
            rows.append(
                {
                    "from": source,
                    "to": target,
                    "features": features,
                    "pairs": str(int(known["units"])),
                    "simmerge": f"{known['simmerge']:.3f}",
                    "source's best fixed": f"{summary['policies']['source']} {known['best_fixed']:.3f}",
                    "vs source's best fixed": interval(known, "difference"),
                    "W/T/L": f"{known['win']:.0f}/{known['tie']:.0f}/{known['loss']:.0f}",
                    "target's best fixed": f"{summary['policies']['hindsight']} {hindsight['best_fixed']:.3f}",
                    "vs target's best fixed": interval(hindsight, "difference"),
                    "random": f"{known['random']:.3f}",
                    "oracle": f"{known['oracle']:.3f}",
                }
            )
    return pd.DataFrame(rows)


def learning_curve(run: str, scratch: Path, sizes: str, repeats: int, seed: int) -> pd.DataFrame:
    out = scratch / f"curve_{Path(run).name}"
    simmerge(
        "learning-curve", "--run", run, "--sizes", sizes, "--repeats", str(repeats), "--seed", str(seed), "-o", str(out)
    )
    return pd.read_csv(out / "summary.csv")


def curve_text(summary: pd.DataFrame) -> str:
    cells = pd.DataFrame(
        {
            "training pairs": summary["n_pairs"].astype(int).astype(str),
            "repeats": [
                f"{int(row['repeats'])}" + ("" if row["supported"] else " (under half)")
                for row in summary.to_dict("records")
            ],
            "simmerge": summary["simmerge"].map("{:.3f}".format),
            "best fixed": summary["best_fixed"].map("{:.3f}".format),
            "oracle": summary["oracle"].map("{:.3f}".format),
            "gap closure": summary["gap_closure"].map("{:+.3f}".format),
            "top-1 within noise": summary["top1_tied"].map("{:.3f}".format),
            "SimMerge − best fixed": [interval(row, "difference") for row in summary.to_dict("records")],
        }
    )
    return markdown_table(cells, ["right"] * len(cells.columns)).rstrip("\n")


def break_even_text(summary: pd.DataFrame) -> str:
    found = break_even(summary)
    if found is None:
        return (
            "break-even not reached at the sizes that at least half of the repeats reach (no interval of SimMerge − "
            "best fixed lies above 0 from there on)"
        )
    return f"break-even at {found} labelled pairs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="a finished run or export (give two or more)")
    parser.add_argument("--sizes", default="1,2,3,4,6", help="learning-curve training pairs (simmerge learning-curve)")
    parser.add_argument("--repeats", type=int, default=20, help="learning-curve draws of test checkpoints and pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "across-catalogs.md"))
    args = parser.parse_args()
    if len(args.run) < 2:
        parser.error("give at least two --run folders")
    with tempfile.TemporaryDirectory() as scratch:
        transfers = transfer_rows(args.run, Path(scratch), args.seed)
        curves = {run: learning_curve(run, Path(scratch), args.sizes, args.repeats, args.seed) for run in args.run}
    command = "benchmarks/across_catalogs.py " + " ".join(f"--run {run}" for run in args.run)
    if any(getattr(args, name) != parser.get_default(name) for name in ("sizes", "repeats", "seed")):
        command += f" --sizes {args.sizes} --repeats {args.repeats} --seed {args.seed}"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    lines = [
        "# Evidence across catalogs: transfer and learning curves",
        "",
        f"Generated by `{command}` (do not edit) at commit {commit.stdout.strip() or 'unknown'}. "
        f"Machine: {describe_machine()}.",
        "",
        "## Transfer",
        "",
        "`simmerge transfer --from A --to B --features F`: A's predictor scores every unordered pair of B on B's "
        "features and labels — applied unchanged (`all`), refitted on A without the KL features in nats "
        "(`dimensionless`), or fitted and applied on each run's within-run percentile ranks (`ranked`). SimMerge − "
        "best fixed is paired over items, with a 95 % interval over pairs and items, against the fixed policy that "
        "was best on A (what a user knows when switching catalogs; W/T/L against it) and against B's best in "
        "hindsight.",
        "",
        markdown_table(transfers, [TEXT_COLUMNS.get(column, "right") for column in transfers]).rstrip("\n"),
        "",
        "## Learning curves",
        "",
        "`simmerge learning-curve --run R`: each repeat holds out one checkpoint group (near-duplicates together), "
        "trains on n of the unordered pairs among the other checkpoints only, and scores the held-out pairs as the "
        "comparison does; mean over repeats, 95 % percentile interval of the per-repeat means. A size larger than "
        "a repeat's pool is capped at the pool; a size that fewer than half the repeats reach is marked (under half) "
        "and does not count for the break-even (it rests on the few draws with a large pool).",
    ]
    for run, summary in curves.items():
        lines += ["", f"### {run}", "", curve_text(summary), "", f"{run}: {break_even_text(summary)}."]
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
