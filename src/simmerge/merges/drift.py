"""How far a merge drifted from its parents, on unlabelled probes: the signal of the label-free baseline.

After a merge, :func:`parent_drift` runs the merged model over the probe prompts of each parent's home tasks (the
probe pass the features use, same settings) and measures ``KL(parent ‖ merge)`` of the next-token distributions at
every probe position against the parent's own stored probe pass: how much of what the parent does on its own task
the merge lost. No label is read. Choosing, per pair, the operator whose merge drifts least
(:class:`simmerge.evaluate.methods.LabelFree`) costs every candidate's merge and its probe passes, and no
evaluation — the label-free choice of coefficients and operators in the style of AdaMMS (arXiv 2503.23733).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simmerge.features.definitions import TaskArrays, kl_per_position
from simmerge.features.probe_pass import configured_probe_pass
from simmerge.features.summary import read_archive

log = logging.getLogger(__name__)


def parent_drift(
    merged_dir: str | os.PathLike,
    parent_parts: Mapping[str, Mapping[str, str | os.PathLike]],
    probe_files: Mapping[str, str | os.PathLike],
    *,
    spec: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """``KL(parent ‖ merge)`` on each parent's home-task probes, averaged over probe positions and tasks.

    Parameters
    ----------
    merged_dir : path
        The merged checkpoint.
    parent_parts : mapping
        Parent name → its home task → its probe part (``features/parts/<parent>/<task>.npz``, rule
        ``probe_pass``). A parent with no home task among the merge's tasks is left out.
    probe_files : mapping of str to path
        Task → its ``probe.jsonl``, for every task of ``parent_parts``.
    spec : mapping
        The run's ``features`` settings (the probe pass the parents' parts were made with).
    seed : int
        The run seed (the probe pass's projection seed).
    device, threads, trust_remote_code
        As :func:`simmerge.features.probe_pass.probe_pass`.

    Returns
    -------
    dict
        ``kl``: parent → mean over its home tasks of the mean KL over positions (nats); ``mean``: the mean over
        parents (the label-free score, lower is closer); ``probe_passes``: tasks passed through the merge;
        ``seconds``: wall time of the pass and the divergences.

    Raises
    ------
    ValueError
        When the merge and a parent did not see the same probe tokens (another probe file, tokenizer or
        ``max_length``): their positions could not be compared.
    """
    started = time.perf_counter()
    tasks = list(dict.fromkeys(task for parts in parent_parts.values() for task in parts))
    if not tasks:
        return {"kl": {}, "mean": None, "probe_passes": 0, "seconds": 0.0}
    arrays, meta = configured_probe_pass(
        merged_dir,
        {task: probe_files[task] for task in tasks},
        spec=spec,
        seed=seed,
        device=device,
        threads=threads,
        trust_remote_code=trust_remote_code,
    )
    kl = {}
    for parent, parts in parent_parts.items():
        per_task = []
        for task, path in parts.items():
            parent_meta, parent_arrays = read_archive(path)
            own = _task_arrays(parent, task, parent_arrays, parent_meta)
            merged = _task_arrays("merge", task, arrays, meta)
            for key in ("lengths", "token_ids"):
                if not np.array_equal(own.arrays[key], merged.arrays[key]):
                    raise ValueError(
                        f"task {task!r}: the merge and parent {parent!r} ({Path(path).name}) saw different probe "
                        f"{'lengths' if key == 'lengths' else 'tokens'}; rerun rule probe_pass for {parent} with "
                        "this run's features settings"
                    )
            per_task.append(float(np.mean(kl_per_position(own, merged))))
        kl[parent] = float(np.mean(per_task))
    seconds = time.perf_counter() - started
    log.info("parent drift of the merge: %s in %.1fs", kl, seconds)
    return {"kl": kl, "mean": float(np.mean(list(kl.values()))), "probe_passes": len(tasks), "seconds": seconds}


def _task_arrays(model: str, task: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> TaskArrays:
    prefix = f"{task}/"
    own = {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}
    return TaskArrays(model=model, task=task, arrays=own, meta=meta)


__all__ = ["parent_drift"]
