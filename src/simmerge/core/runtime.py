"""How jobs run, never what they write: settings read outside the rules' ``params``, and the offline hub.

Snakemake re-runs a job whose ``params`` changed. A setting that only moves memory or scratch space
(``scoring.batch_size``, ``merges.scratch_dir``) therefore stays out of every rule's params
(``rules/common.smk`` leaves out :data:`RUNTIME_KEYS`), and the scripts that need it read it from the whole
config with :func:`runtime_settings`. Changing such a setting re-runs no job. Threads are the other runtime
setting; they come from Snakemake's ``threads`` (``--set-threads``, profiles), never from the config.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from simmerge.core.config import MergeSpec, RunConfig, ScoringSpec

# Config keys (block → keys) that are runtime settings: no rule's params may hold them.
RUNTIME_KEYS = {"scoring": {"batch_size"}, "merges": {"scratch_dir"}}


@dataclass(frozen=True)
class RuntimeSettings:
    """How jobs run, never what they write.

    Attributes
    ----------
    batch_size : int or "auto"
        lm-eval batch size (``scoring.batch_size``): memory, not scores, depends on it.
    scratch_dir : str or None
        Where a merge lives while it is scored (``merges.scratch_dir``; None: ``/dev/shm`` when it has room,
        else the system temp dir).
    """

    batch_size: int | str
    scratch_dir: str | None


def runtime_settings(config: RunConfig | Mapping[str, Any]) -> RuntimeSettings:
    """The runtime settings of a run config: a parsed one, or the raw mapping a workflow script gets as
    ``snakemake.config`` (only the blocks that hold runtime settings are read, with their models' defaults).

    Examples
    --------
    >>> runtime_settings({"scoring": {"batch_size": 4}})
    RuntimeSettings(batch_size=4, scratch_dir=None)
    """
    if isinstance(config, RunConfig):
        scoring, merges = config.scoring, config.merges
    else:
        scoring = ScoringSpec.model_validate(config.get("scoring") or {})
        merges = MergeSpec.model_validate(config.get("merges") or {})
    return RuntimeSettings(batch_size=scoring.batch_size, scratch_dir=merges.scratch_dir)


__all__ = ["RUNTIME_KEYS", "RuntimeSettings", "native_threads", "runtime_settings"]


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Make huggingface_hub, datasets and transformers treat the hub as unreachable inside the block.

    Both libraries copy ``HF_HUB_OFFLINE`` into module constants at import, so setting the environment is not
    enough once they are imported; the constants are patched too and restored afterwards.
    """
    # deferred: datasets, huggingface_hub and lm-eval are slow to import; only scoring needs them
    import datasets.config
    import huggingface_hub.constants

    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    patched = [
        (huggingface_hub.constants, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_DATASETS_OFFLINE"),
    ]
    saved_attrs = [(module, attr, getattr(module, attr)) for module, attr in patched if hasattr(module, attr)]
    os.environ.update({key: "1" for key in saved_env})
    for module, attr, _ in saved_attrs:
        setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in saved_attrs:
            setattr(module, attr, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def native_threads(threads: int) -> Iterator[None]:
    """Cap the OpenMP and BLAS thread pools (scikit-learn's gradient boosting and forests, numpy's BLAS) at the
    job's ``threads`` for the block.

    Snakemake gives a ``script:`` job no ``OMP_NUM_THREADS`` (only ``shell:`` jobs get one), so a one-thread
    model-fitting job would start an OpenMP thread per core beside the other jobs of ``--cores``: measured here, a
    gradient-boosting test took 325 s beside two busy processes and 6.5 s alone.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    with threadpool_limits(limits=max(1, int(threads))):
        yield
