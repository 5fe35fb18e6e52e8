"""Contract-conforming synthetic model summaries (docs/model-summary-format.md), shared by the feature tests.

Summaries are built as plain arrays written to ``.npz`` files, so the tests that use them do not depend on a probe
pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from simmerge.features.probe_pass import projection_matrix


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def truncate_topk(logp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids (most likely first) and log-probs of full log-distributions, as the probe pass stores them."""
    ids = np.argsort(-logp, axis=-1, kind="stable")[:, :k]
    return ids.astype(np.int32), np.take_along_axis(logp, ids, axis=-1).astype(np.float32)


def _tril(n: int) -> np.ndarray:
    rows, cols = np.tril_indices(n)
    return rows * n + cols


def write_summary(path: Path, meta: dict, tasks: dict[str, dict[str, np.ndarray]], sketch: dict) -> Path:
    """Write a model summary: ``meta`` JSON, ``<task>/<key>`` arrays and ``sketch/<key>`` arrays."""
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    for task, task_arrays in tasks.items():
        arrays.update({f"{task}/{key}": value for key, value in task_arrays.items()})
    arrays.update({f"sketch/{key}": value for key, value in sketch.items()})
    np.savez(path, **arrays)
    return path


class Synth:
    """A family of synthetic checkpoints: base outputs plus per-model perturbations of size ``scale``.

    Every model of one ``Synth`` sees the same probes; ``model(name, seed, scale)`` gives a perturbed model
    (``scale=0`` is the base itself).
    """

    def __init__(
        self,
        *,
        tasks=("t1", "t2"),
        lengths=(4, 5, 3),
        num_layers=3,
        num_heads=2,
        hidden_size=24,
        vocab_size=50,
        top_k=8,
        logprobs="topk",
        hidden_dim=None,
        attention_dim=None,
        seed=0,
        logit_scale=3.0,
    ):
        self.tasks = tuple(tasks)
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.L, self.H, self.W, self.V, self.k = num_layers, num_heads, hidden_size, vocab_size, top_k
        self.logprobs, self.hidden_dim, self.attention_dim = logprobs, hidden_dim, attention_dim
        self.seed = seed
        rng = np.random.default_rng(seed)
        n = int(self.lengths.sum())
        self.base = {}
        for task in self.tasks:
            self.base[task] = {
                "token_ids": rng.integers(0, vocab_size, n).astype(np.int32),
                "logits": rng.normal(0, logit_scale, (n, vocab_size)),
                "hidden": rng.normal(0, 1, (num_layers + 1, n, hidden_size)),
                "scores": [rng.normal(0, 1, (num_layers, num_heads, m, m)) for m in self.lengths],
            }
        # Weights: two blocks and an embedding, as tensor name -> base values.
        self.weights = {
            "model.embed_tokens.weight": rng.normal(0, 1, 40),
            "model.layers.0.mlp.weight": rng.normal(0, 1, 30),
            "model.layers.1.mlp.weight": rng.normal(0, 1, 30),
        }

    def task_arrays(self, task: str, seed: int, scale: float) -> dict[str, np.ndarray]:
        base = self.base[task]
        rng = np.random.default_rng([self.seed, seed, self.tasks.index(task)])
        logp = log_softmax(base["logits"] + scale * rng.normal(0, 1, base["logits"].shape))
        ids, top = truncate_topk(logp, self.k)
        hidden = base["hidden"] + scale * rng.normal(0, 1, base["hidden"].shape)
        starts = np.concatenate([[0], np.cumsum(self.lengths)])
        hidden_norm = np.stack(
            [
                [np.linalg.norm(hidden[layer, s:e]) for s, e in zip(starts[:-1], starts[1:], strict=True)]
                for layer in range(self.L + 1)
            ]
        ).astype(np.float32)
        if self.hidden_dim is not None:
            hidden = hidden @ projection_matrix("hidden", self.W, self.hidden_dim, 0)
        maps, norms = [], []
        for m, scores in zip(self.lengths, base["scores"], strict=True):
            z = scores + scale * rng.normal(0, 1, scores.shape) + np.triu(np.full((m, m), -np.inf), 1)
            tri = np.exp(log_softmax(z)).reshape(self.L, self.H, m * m)[..., _tril(m)]
            norms.append(np.linalg.norm(tri, axis=-1))
            if self.attention_dim is not None:
                tri = tri @ projection_matrix("attention", tri.shape[-1], self.attention_dim, 0)
            maps.append(tri)
        arrays = {
            "lengths": self.lengths,
            "token_ids": base["token_ids"],
            "topk_ids": ids,
            "topk_logp": top,
            "hidden": hidden.astype(np.float16),
            "hidden_norm": hidden_norm,
            "attention": np.concatenate(maps, axis=-1).astype(np.float16),
            "attention_norm": np.stack(norms, axis=-1).astype(np.float32),
        }
        if self.logprobs == "full":
            arrays["logp"] = logp.astype(np.float32)
        return arrays

    def sketch(self, seed: int, scale: float, top_fraction: float = 0.2) -> dict[str, np.ndarray]:
        """A sketch that samples every coordinate (so the structural features are exact)."""
        rng = np.random.default_rng([self.seed, seed, 99])
        names = sorted(self.weights)
        base = [self.weights[n] for n in names]
        tau = [scale * rng.normal(0, 0.1, len(b)) for b in base]
        numel = np.array([len(b) for b in base], dtype=np.int64)
        thresholds = []
        for t in tau:
            keep = min(len(t), max(1, math.floor(top_fraction * len(t) + 0.5)))
            thresholds.append(np.sort(np.abs(t))[::-1][keep - 1])
        return {
            "names": np.array(names),
            "layer": np.array([int(n.split(".")[2]) if ".layers." in n else -1 for n in names], dtype=np.int32),
            "numel": numel,
            "tau_norm": np.array([np.linalg.norm(t) for t in tau]),
            "theta_norm": np.array([np.linalg.norm(b + t) for b, t in zip(base, tau, strict=True)]),
            "base_norm": np.array([np.linalg.norm(b) for b in base]),
            "tau_dot_base": np.array([t @ b for b, t in zip(base, tau, strict=True)]),
            "tau_threshold": np.array(thresholds, dtype=np.float64),
            "offsets": np.concatenate([[0], np.cumsum(numel)]).astype(np.int64),
            "coords": np.concatenate([np.arange(n) for n in numel]).astype(np.int64),
            "tau": np.concatenate(tau).astype(np.float32),
        }

    def meta(self, name: str, **overrides) -> dict:
        layout = lambda dim: {"mode": "projected", "dim": dim} if dim is not None else None  # noqa: E731
        meta = {
            "format_version": 1,
            "name": name,
            "tasks": list(self.tasks),
            "num_layers": self.L,
            "num_heads": self.H,
            "hidden_size": self.W,
            "vocab_size": self.V,
            "top_k": self.k,
            "logprobs": dict.fromkeys(self.tasks, self.logprobs),
            "hidden": {t: layout(self.hidden_dim) or {"mode": "full", "dim": self.W} for t in self.tasks},
            "attention": {t: layout(self.attention_dim) or {"mode": "full", "dim": None} for t in self.tasks},
            "projection_seed": 0,
            "probe_sha256": dict.fromkeys(self.tasks, "0" * 64),
            "sketch": {"size": 100, "seed": 0, "top_fraction": 0.2},
        }
        meta.update(overrides)
        return meta

    def model(self, tmp_path: Path, name: str, seed: int, scale: float, **tweaks) -> Path:
        tasks = {t: self.task_arrays(t, seed, scale) for t in self.tasks}
        for task, changes in tweaks.get("arrays", {}).items():
            tasks[task].update(changes)
        meta = self.meta(name, **tweaks.get("meta", {}))
        return write_summary(tmp_path / f"{name}.npz", meta, tasks, self.sketch(seed, scale))
