"""Settings that change how a job runs but never what it writes, read outside the rules' ``params``.

Snakemake re-runs a job whose ``params`` changed. A setting that only moves memory or scratch space
(``scoring.batch_size``, ``merges.scratch_dir``) therefore stays out of every rule's params
(``rules/common.smk`` leaves out :data:`RUNTIME_KEYS`), and the scripts that need it read it from the whole
config with :func:`runtime_settings`. Changing such a setting re-runs no job. Threads are the other runtime
setting; they come from Snakemake's ``threads`` (``--set-threads``, profiles), never from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    batch_size : int
        lm-eval batch size (``scoring.batch_size``): memory, not scores, depends on it.
    scratch_dir : str or None
        Where a merge lives while it is scored (``merges.scratch_dir``; None: ``/dev/shm`` when it has room,
        else the system temp dir).
    """

    batch_size: int
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


__all__ = ["RUNTIME_KEYS", "RuntimeSettings", "runtime_settings"]
