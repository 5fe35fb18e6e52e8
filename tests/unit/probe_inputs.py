"""Probe files, tiny checkpoints and a stand-in weight sketch shared by the probe-pass and summary tests."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

from simmerge.catalog.toy import build_tiny_checkpoint

HIDDEN = 32
LAYERS = 2
HEADS = 4
VOCAB = 259  # byte tokenizer: 3 specials + 256 bytes
MAX_LENGTH = 24
PROMPTS = {
    "alpha": [
        "Belarus in French:",
        "abcd",
        "A much longer prompt that the probe pass has to cut at max_length tokens",
        "Chile:",
        "1205 in German words:",
    ],
    "beta": ["🚣 is called", "Element with the symbol Sc:", "xyzw"],
}
SPEC = {
    "top_k": 5,
    "full_vocab_max_mb": 100,
    "hidden_max_mb": 0,
    "attention_max_mb": 0,
    "projection_dim": 8,
    "sketch_size": 100,
    "top_fraction": 0.2,
    "batch_size": 4,
    "max_length": MAX_LENGTH,
}


def build_checkpoints(root: Path) -> tuple[Path, Path]:
    """Two tiny Llamas of the same shape (seeds 0 and 1) under ``root``."""
    for seed in (0, 1):
        build_tiny_checkpoint(root / f"m{seed}", seed=seed, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS)
    return root / "m0", root / "m1"


def write_probes(folder, prompts_by_task):
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for task, prompts in prompts_by_task.items():
        path = folder / f"{task}.jsonl"
        rows = [{"id": f"{task}-probe-{i:04d}", "entity": str(i), "prompt": p} for i, p in enumerate(prompts)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[task] = path
    return files


def fake_weight_sketch(ckpt_dir, base_dir, *, size, seed, top_fraction):
    """Contract-shaped sketch arrays, so probe_features can be tested without simmerge.features.sketch."""
    return {
        "sketch/names": np.array(["lm_head.weight", "model.layers.0.mlp.up_proj.weight"]),
        "sketch/layer": np.array([-1, 0], dtype=np.int32),
        "sketch/numel": np.array([10, 20], dtype=np.int64),
        "sketch/tau_norm": np.array([0.0, 1.0]),
        "sketch/theta_norm": np.array([1.0, 2.0]),
        "sketch/base_norm": np.array([1.0, 2.0]),
        "sketch/tau_dot_base": np.array([0.0, 0.5]),
        "sketch/tau_threshold": np.array([0.0, 0.1]),
        "sketch/offsets": np.array([0, 1, 3], dtype=np.int64),
        "sketch/coords": np.array([4, 2, 9], dtype=np.int64),
        "sketch/tau": np.array([0.0, 0.25, -0.5], dtype=np.float32),
    }


def use_fake_sketch(monkeypatch) -> None:
    """Replace ``simmerge.features.sketch`` by a module whose ``weight_sketch`` is :func:`fake_weight_sketch`."""
    module = types.ModuleType("simmerge.features.sketch")
    module.weight_sketch = fake_weight_sketch
    monkeypatch.setitem(sys.modules, "simmerge.features.sketch", module)
