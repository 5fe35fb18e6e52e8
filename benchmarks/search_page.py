"""Selection methods at a counted budget, CMA-ES included, on a run whose CMA-ES searches (rule cma_search) exist
beside labels that came from elsewhere (an export, whose merges were not re-run). Writes docs/search-default.md.

The methods table is `simmerge search --run R` run here into a temporary folder and read back, so a reader re-runs
it by hand; CMA-ES's seconds per pair are its records' own (``wall_seconds``: every merge and scoring of the search
and the held-out scoring of each generation's best; rule cma_search or `simmerge cma-search`).
The results page of a full run (rule results_page) has the same table priced in seconds per decision; this page
exists because that price needs the run's merge records, which an export does not carry.

    .venv/bin/python benchmarks/search_page.py --run results/default --seed 1234 --labels-from reference/default \
        --out docs/search-default.md

With ``--labels-from EXPORT`` the page states, checked here, that the run's labels and per-item outcomes are the
export's, byte for byte, and that its checkpoints' files have the SHA-256 the export's manifests record (so the
searches merged the very checkpoints the labels were measured on); the run is refused otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from simmerge.core.io import markdown_table, read_json, sha256_file
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.evaluate.methods import evaluations_to_match

REPO = Path(__file__).resolve().parent.parent


def search_summary(run: str, scratch: Path, seed: int) -> pd.DataFrame:
    """`simmerge search` on the run; its own error message ends the benchmark."""
    command = [sys.executable, "-m", "simmerge.cli", "search", "--run", run, "--seed", str(seed), "-o", str(scratch)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"`simmerge search --run {run}` failed:\n{done.stderr.strip()}")
    return pd.read_csv(scratch / "summary.csv")


def same_labels_and_checkpoints(run: RunLayout, export: RunLayout) -> str:
    """What the run shares with the export it took its labels from, checked; raises SystemExit on a difference."""
    for mine, theirs in (
        (run.labels_parquet, export.labels_parquet),
        (run.label_items, export.label_items),
        (run.comparison_summary("checkpoint"), export.comparison_summary("checkpoint")),  # its held-out groups
    ):
        if not mine.is_file() or sha256_file(mine) != sha256_file(theirs):
            raise SystemExit(f"{mine} is missing or differs from {theirs}: copy it from the export")
    names = sorted(path.parent.name for path in export.glob(export.checkpoint_manifest("*")))
    for name in names:
        if read_json(run.checkpoint_manifest(name))["files"] != read_json(export.checkpoint_manifest(name))["files"]:
            raise SystemExit(f"checkpoint {name}: its files differ from those {export.checkpoint_manifest(name)} lists")
    return (
        f"The run's labels, per-item outcomes and held-out checkpoint groups are {export.root}'s (same SHA-256), and "
        f"its checkpoints ({', '.join(names)}) have the files, by SHA-256, that {export.root}'s manifests list: "
        "the searches merged the checkpoints the labels were measured on."
    )


def interval(row: pd.Series, key: str, sign: str = "+") -> str:
    return f"{row[key]:{sign}.3f} [{row[f'{key}_lo']:{sign}.3f}, {row[f'{key}_hi']:{sign}.3f}]"


def methods_text(summary: pd.DataFrame) -> str:
    cells = pd.DataFrame(
        {
            "method": [
                f"{method} (bound)" if bound else method
                for method, bound in zip(summary["method"], summary["bound"], strict=True)
            ],
            "pairs": summary["pairs"].astype(int).astype(str),
            "held-out score": [interval(row, "score", sign="") for _, row in summary.iterrows()],
            "regret": summary["regret"].map("{:.3f}".format),
            "− SimMerge (paired)": [interval(row, "difference") for _, row in summary.iterrows()],
            "merges": summary["merges"].map("{:.1f}".format),
            "items scored": summary["items"].map("{:.1f}".format),
            "probe passes": summary["probe_passes"].map("{:.1f}".format),
        }
    )
    return markdown_table(cells, ["left", *["right"] * (len(cells.columns) - 1)]).rstrip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="results/default", help="a run folder with labels and search/cma/*.json")
    parser.add_argument("--labels-from", help="the export the run's labels were copied from (checked)")
    parser.add_argument(
        "--seed", type=int, required=True, help="the run's predictor seed (predictor.seed, else seed): the item split's"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "search-default.md"))
    args = parser.parse_args()
    layout = RunLayout(args.run)
    records = sorted(layout.glob(layout.cma_record("*", "*")))
    if not records:
        parser.error(f"{args.run} has no CMA-ES records ({layout.cma_record('*', '*')}); run rule cma_search first")
    shared = same_labels_and_checkpoints(layout, RunLayout(args.labels_from)) if args.labels_from else ""
    with tempfile.TemporaryDirectory() as scratch:
        summary = search_summary(args.run, Path(scratch), args.seed)
    if not (summary["name"] == "cma_es").any():
        raise SystemExit(
            f"`simmerge search --run {args.run} --seed {args.seed}` used none of the {len(records)} CMA-ES records: "
            "they were made on another item split (another seed or other labels)"
        )
    seconds = pd.Series([read_json(path)["wall_seconds"] for path in records])
    matched = evaluations_to_match(summary)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    command = f"benchmarks/search_page.py --run {args.run}"
    command += (f" --labels-from {args.labels_from}" if args.labels_from else "") + f" --seed {args.seed}"
    lines = [
        "# Selection methods at a counted budget, with CMA-ES",
        "",
        f"Generated by `{command}` (do not edit) at commit {commit.stdout.strip() or 'unknown'}. "
        f"Machine: {describe_machine()}.",
        "",
        "Every method of `predictor.methods` and the run's CMA-ES searches (`predictor.cma_search`, rule "
        "`cma_search`), from `simmerge search`: each pair's items are split per task, methods evaluate on one half "
        "and every choice is scored on the other; SimMerge, SimMerge + k and the best fixed policy are fitted on the "
        "held-out checkpoint folds. `cma_es (N evals)`: CMA-ES over the merge's continuous parameters after N "
        "evaluations, each a real mergekit merge scored by lm-eval on the pair's search items; its merges are off the "
        "operator grid, so its regret against the grid's best can be negative. `− SimMerge`: paired difference from "
        "SimMerge over the same pairs, 95 % bootstrap interval over pairs. Merges, items and probe passes are means "
        "per pair." + (f" {shared}" if shared else ""),
        "",
        methods_text(summary),
        "",
        f"CMA-ES searches: {len(seconds)} pairs, {seconds.mean():.0f} s per pair on this machine (min "
        f"{seconds.min():.0f}, max {seconds.max():.0f}; the records' `wall_seconds`, one torch thread per search), the "
        "held-out scoring of each generation's best included.",
        "",
        "Items per pair each search needs to reach SimMerge's held-out score: "
        + "; ".join(
            f"{name}: {f'{items:.0f}' if items is not None else 'not within the budgets tried'}"
            for name, items in matched.items()
        )
        + ".",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
