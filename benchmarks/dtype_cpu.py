"""bfloat16 against float32 on this CPU: speed, and agreement of per-item outcomes and of probe-pass outputs.

Decides whether ``scoring.dtype`` / ``features.dtype`` ``auto`` may mean bfloat16 on a CPU: only if it is faster
*and* its labels agree within their noise. On CPUs without AVX-512 BF16 / AMX, bfloat16 matmuls are emulated and
usually slower. Uses a built run of the default catalog: each expert is scored on its home tasks in both dtypes
(the per-item outcomes compared item by item, and the paired difference of the scores with its standard error),
and probed on one task in both dtypes (the next-token distributions compared). Writes docs/dtype-cpu.md.

    .venv/bin/python benchmarks/dtype_cpu.py [--run results/default] [--config config/config.yaml] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simmerge.catalog.build import checkpoint_dir
from simmerge.core.io import markdown_table
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe_machine
from simmerge.evaluate.paired import paired_difference
from simmerge.features.probe_pass import probe_pass
from simmerge.merges.scoring import score_checkpoint
from simmerge.run import TASK_DIR, load

REPO = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "bfloat16")
PROBE_OPTIONS = {
    "top_k": 256,
    "full_vocab_max_mb": 0,
    "hidden_max_mb": 64,
    "attention_max_mb": 64,
    "projection_dim": 256,
    "projection_seed": 0,
    "batch_size": 16,
    "max_length": 64,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="results/default")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "docs" / "dtype-cpu.md"))
    args = parser.parse_args()
    catalog = load(yaml.safe_load(Path(args.config).read_text(encoding="utf-8")))
    layout = RunLayout(Path(args.run))
    scoring_rows, probe_rows = [], []
    for expert in catalog.experts:
        model = checkpoint_dir(layout.checkpoint_manifest(expert.name))
        data = {task: layout.task_data(task, "eval") for task in expert.tasks}
        scored = {}
        for dtype in DTYPES:
            record = score_checkpoint(model, REPO / TASK_DIR, data, threads=args.threads, dtype=dtype)
            scored[dtype] = record
        for task in expert.tasks:
            items = {dtype: scored[dtype]["items"][task] for dtype in DTYPES}
            x, y = (items[d].rename(columns={"score": "value"}) for d in ("bfloat16", "float32"))
            difference = paired_difference(x, y)
            scoring_rows.append(
                {
                    "expert": expert.name,
                    "task": task,
                    "items": len(x),
                    "fp32": scored["float32"]["tasks"][task]["score"],
                    "bf16": scored["bfloat16"]["tasks"][task]["score"],
                    "bf16 − fp32 (paired SE)": f"{difference.difference:+.3f} ({difference.stderr:.3f})",
                    "items agreeing": f"{(x['value'].to_numpy() == y['value'].to_numpy()).mean():.3f}",
                    "likelihood mean abs Δ": float(np.nanmean(np.abs(x["likelihood"] - y["likelihood"]))),
                    "s fp32": scored["float32"]["wall_seconds"] - scored["float32"]["load_seconds"],
                    "s bf16": scored["bfloat16"]["wall_seconds"] - scored["bfloat16"]["load_seconds"],
                }
            )
            print(scoring_rows[-1], flush=True)
        task = expert.tasks[0]
        passes, seconds = {}, {}
        for dtype in DTYPES:
            started = time.perf_counter()
            passes[dtype], _ = probe_pass(
                model,
                {task: layout.task_data(task, "probe")},
                **PROBE_OPTIONS,
                dtype=dtype,
                threads=args.threads,
            )
            seconds[dtype] = time.perf_counter() - started
        reference, other = (np.exp(passes[d][f"{task}/topk_logp"]) for d in DTYPES)
        top1 = passes["float32"][f"{task}/topk_ids"][..., 0] == passes["bfloat16"][f"{task}/topk_ids"][..., 0]
        probe_rows.append(
            {
                "expert": expert.name,
                "task": task,
                "positions": int(top1.size),
                "next-token top-1 agreeing": f"{top1.mean():.3f}",
                "top-k probability max abs Δ": float(np.abs(reference - other).max()),
                "s fp32": seconds["float32"],
                "s bf16": seconds["bfloat16"],
            }
        )
        print(probe_rows[-1], flush=True)
    write_page(pd.DataFrame(scoring_rows), pd.DataFrame(probe_rows), args)


def write_page(scoring: pd.DataFrame, probes: pd.DataFrame, args: argparse.Namespace) -> None:
    speed = scoring["s fp32"].sum() / scoring["s bf16"].sum()
    probe_speed = probes["s fp32"].sum() / probes["s bf16"].sum()
    lines = [
        "# bfloat16 against float32 on this CPU",
        "",
        "Generated by `benchmarks/dtype_cpu.py` (do not edit) from a built run of the default catalog.",
        f"Machine: {describe_machine()}, {args.threads} torch threads. Command: `.venv/bin/python "
        f"benchmarks/dtype_cpu.py --run {args.run} --config {args.config} --threads {args.threads}`.",
        "",
        f"Scoring (lm-eval, evaluation seconds without the model load): bfloat16 is {speed:.2f}× the speed of "
        f"float32; probe passes: {probe_speed:.2f}×. The default `auto` stays float32 on a CPU "
        + (
            "(bfloat16 is not faster here)."
            if speed <= 1
            else "unless the scores below agree within their noise on the machine at hand."
        ),
        "",
        "## Scoring: per-item outcomes",
        "",
        markdown_table(scoring.round(4), ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r"]),
        "",
        "## Probe passes: next-token distributions",
        "",
        markdown_table(probes.round(4), ["l", "l", "r", "r", "r", "r", "r"]),
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
