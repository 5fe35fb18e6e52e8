"""Memory and scratch disk a job needs, from the size of the checkpoints it reads (their manifests).

The SLURM profile cannot know how large a researcher's checkpoints are, so the rules that load a model ask this
module: ``rules/common.smk`` gives them ``mem_mb`` and ``disk_mb`` as functions of the job's input manifests
(Snakemake evaluates them again when the job is ready to run, when every manifest exists). A checkpoint of ``P``
parameters takes ``M = 4·P`` bytes in float32, the dtype the jobs load and merge in on a CPU; per rule:

=================  ===========================  =======================================================
rule               host memory                  scratch disk (``tmpdir``)
=================  ===========================  =======================================================
expert_scores      1 M + 2 GB                   —
probe_pass         1 M + 2 GB                   —
weight_sketch      2 M + 1 GB                   —
finetune_expert    4 M + 4 GB (AdamW: weights,  —
                   gradients, two moments)
merge_score        2 M + 2 GB (the merge's      1 M + 1 GB (the merged checkpoint while it is scored)
                   output, then the model
                   lm-eval loads)
multiway_node      2 M + 2 GB                   —  (writes into the run folder)
multiway_plan      2 M + 2 GB                   2 M + 1 GB (the chain's intermediates)
multiway_score     1 M + 2 GB                   —
convert_gguf       2 M + 2 GB                   —
=================  ===========================  =======================================================

On the default catalog (SmolLM2-135M, M = 0.54 GB) merge_score asks 3.1 GB of memory; at 7B (M = 29 GB), 60 GB.
A rule the table does not name keeps the profile's defaults.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GB = 1e9
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class Sizing:
    """A rule's needs as ``models × M + extra_gb``: memory, and scratch disk (0 models and 0 GB: none)."""

    memory_models: float
    memory_extra_gb: float
    disk_models: float = 0.0
    disk_extra_gb: float = 0.0


RULE_SIZING = {
    "expert_scores": Sizing(1, 2),
    "probe_pass": Sizing(1, 2),
    "weight_sketch": Sizing(2, 1),
    "finetune_expert": Sizing(4, 4),
    "merge_score": Sizing(2, 2, disk_models=1, disk_extra_gb=1),
    "cma_search": Sizing(2, 2, disk_models=1, disk_extra_gb=1),  # merge_score's, one merge at a time
    "multiway_node": Sizing(2, 2),
    "multiway_plan": Sizing(2, 2, disk_models=2, disk_extra_gb=1),
    "multiway_score": Sizing(1, 2),
    "convert_gguf": Sizing(2, 2),
}


def model_bytes(manifest: str | os.PathLike) -> int:
    """``M``: the float32 size of a checkpoint, from its manifest's ``parameter_count``; 0 for a manifest that
    does not exist yet or holds none (``snakemake --touch`` leaves empty files; the pre-flight checks manifests)."""
    try:
        record = json.loads(Path(manifest).read_text(encoding="utf-8"))
        return int(record["parameter_count"]) * FLOAT32_BYTES
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def job_resources(rule: str, manifests: Sequence[str | os.PathLike]) -> dict[str, int]:
    """``mem_mb`` and ``disk_mb`` of one job of ``rule`` that reads the checkpoints of ``manifests``.

    ``M`` is the largest of them (a merge's parents share the base's shape); a manifest not written yet (a
    dry-run, or the job's first evaluation before its inputs exist) or without a parameter count counts 0, so
    the value is the rule's extra alone until Snakemake evaluates it again for the ready job.

    Raises
    ------
    KeyError
        If ``rule`` is not in :data:`RULE_SIZING`.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> manifest = pathlib.Path(tempfile.mkdtemp()) / "manifest.json"
    >>> _ = manifest.write_text(json.dumps({"parameter_count": 134515008}))
    >>> job_resources("merge_score", [manifest])
    {'mem_mb': 3077, 'disk_mb': 1539}
    """
    sizing = RULE_SIZING[rule]
    size = max((model_bytes(path) for path in manifests), default=0)

    def megabytes(models: float, extra_gb: float) -> int:
        return math.ceil((models * size + extra_gb * GB) / 1e6)

    return {
        "mem_mb": megabytes(sizing.memory_models, sizing.memory_extra_gb),
        "disk_mb": megabytes(sizing.disk_models, sizing.disk_extra_gb),
    }


__all__ = ["RULE_SIZING", "Sizing", "job_resources", "model_bytes"]
