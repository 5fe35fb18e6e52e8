"""mergekit's sorting sparsification against simmerge.merges.sparsification's selection, on one real expert pair:
merge seconds per operator (one thread), how far the merged weights differ, and whether every mask difference is
a tie at the keep threshold. Writes docs/sparsification.md.

    .venv/bin/python benchmarks/sparsification.py --run results/default --pair emoji rhyme
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import mergekit.sparsify as mergekit_sparsify
import safetensors.torch
import torch

from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.merges import sparsification
from simmerge.merges.merging import merge_pair
from simmerge.merges.operators import documented_operators, load_operators

REPO = Path(__file__).resolve().parent.parent
OPERATORS = ("ties_d50", "ties_d20", "breadcrumbs_d90", "della_d50")
MERGEKIT_OWN = sparsification.originals()  # before anything replaces them


def use(functions: dict) -> None:
    for name, function in functions.items():
        setattr(mergekit_sparsify, name, function)


def timed_merges(layout: RunLayout, a: str, b: str, base: str, scratch: Path) -> list[dict]:
    operators = load_operators(list(documented_operators()))  # name -> Operator
    rows = []
    for name in OPERATORS:
        seconds, weights = {}, {}
        for mode, functions in (("mergekit", MERGEKIT_OWN), ("selection", sparsification.REPLACED)):
            out = scratch / f"{name}_{mode}"
            shutil.rmtree(out, ignore_errors=True)
            install = sparsification.install
            sparsification.install = lambda: None  # merge_pair would install the selection: keep this mode's
            try:
                use(functions)
                record = merge_pair(
                    operators[name],
                    layout.checkpoint_dir(a),
                    layout.checkpoint_dir(b),
                    layout.checkpoint_dir(base),
                    out,
                    seed=0,
                    device="cpu",
                    threads=1,
                )
            finally:
                sparsification.install = install
            if record["status"] != "ok":
                raise SystemExit(f"{name} ({mode}) failed: {record['error']}")
            seconds[mode] = record["wall_seconds"]
            weights[mode] = safetensors.torch.load_file(out / "model.safetensors")
            shutil.rmtree(out)
        difference = max(
            float((weights["mergekit"][k] - weights["selection"][k]).abs().max()) for k in weights["mergekit"]
        )
        rows.append(
            {
                "operator": name,
                "mergekit_s": seconds["mergekit"],
                "selection_s": seconds["selection"],
                "speed_up": seconds["mergekit"] / seconds["selection"],
                "max_abs_weight_difference": difference,
            }
        )
    use(sparsification.REPLACED)
    return rows


def mask_ties(layout: RunLayout, expert: str, base: str, density: float) -> dict:
    """Over every tensor of one task vector: elements whose TIES mask differs, and whether each is a tie."""
    expert_weights = safetensors.torch.load_file(layout.checkpoint_dir(expert) / "model.safetensors")
    base_weights = safetensors.torch.load_file(layout.checkpoint_dir(base) / "model.safetensors")
    mergekit_magnitude = MERGEKIT_OWN["magnitude"]
    total = differ = at_threshold = 0
    for key, weight in expert_weights.items():
        delta = weight.float() - base_weights[key].float()
        theirs = mergekit_magnitude(delta, density) != 0
        ours = sparsification.magnitude(delta, density) != 0
        changed = (theirs != ours).reshape(-1)
        total += delta.numel()
        differ += int(changed.sum())
        if changed.any():
            magnitudes = delta.abs().reshape(-1)
            threshold = magnitudes[ours.reshape(-1)].min()
            at_threshold += int((magnitudes[changed] == threshold).sum())
    return {"elements": total, "differ": differ, "at_threshold": at_threshold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument("--pair", nargs=2, default=["emoji", "rhyme"])
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "sparsification.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    layout = RunLayout(args.run)
    a, b = args.pair
    with tempfile.TemporaryDirectory() as scratch:
        rows = timed_merges(layout, a, b, args.base, Path(scratch))
    ties = mask_ties(layout, a, args.base, 0.5)
    table = [
        "| operator | mergekit (s) | selection (s) | speed-up | max abs weight difference |",
        "|---|---:|---:|---:|---:|",
    ]
    table += [
        f"| {r['operator']} | {r['mergekit_s']:.1f} | {r['selection_s']:.1f} | {r['speed_up']:.1f}× | "
        f"{r['max_abs_weight_difference']:.2g} |"
        for r in rows
    ]
    command = f"benchmarks/sparsification.py --run {args.run} --pair {a} {b}"
    text = [
        "# Sparsification by selection instead of a full sort",
        "",
        f"Generated by `{command}` (do not edit). Machine: {describe_machine()}; one torch thread; the machine may "
        "have been shared with other jobs while this ran (both modes equally: they alternate).",
        "",
        f"Merge seconds of the pair {a} + {b} (mergekit's `wall_seconds`: loading, sparsifying, merging, writing) "
        "with mergekit 0.1.5's own `magnitude`, `magnitude_outliers` and `della_magprune` against "
        "`simmerge.merges.sparsification` (installed before every merge of the workflow):",
        "",
        *table,
        "",
        f"TIES masks (density 0.5) of {a}'s task vector, every tensor: {ties['differ']} of {ties['elements']:,} "
        f"elements differ between the two, {ties['at_threshold']} of them magnitudes equal to the keep threshold — "
        "ties that mergekit's unstable sort keeps in an unspecified subset and the selection keeps in storage order. "
        "DELLA's ranks are the same permutation (identical weights above).",
        "",
    ]
    Path(args.output).write_text("\n".join(text), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
