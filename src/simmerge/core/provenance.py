"""Where a record came from: the code, the CPU and the libraries that produced its numbers.

Every record the pipeline writes (checkpoint manifests, expert scores, probe parts and model summaries, merge
records) carries :func:`provenance` under the key ``provenance``. A results folder filled over weeks can hold records
of several commits, machines or library versions, and scores of two versions are not comparable (lm-eval's
generation, mergekit's arithmetic and the CPU's vector units all move the last digits, sometimes more);
:func:`mixed_provenance` finds such a mix, and merge records made from checkpoints that were rebuilt since.

Standard library only: Snakemake imports ``simmerge.core`` whenever it parses the workflow, and library versions are
read from the installed metadata, without importing the libraries.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import platform
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import simmerge

LIBRARIES = ("torch", "transformers", "mergekit", "lm_eval", "safetensors", "numpy", "scikit-learn", "pandas")
"""Distributions whose version changes the numbers of a record (their arithmetic, generation or parsing)."""

NUMERIC_CPU_FLAGS = frozenset(
    {
        # x86: the vector and matrix units torch's CPU kernels dispatch on (oneDNN, FBGEMM, MKL)
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        # arm64 (/proc/cpuinfo "Features")
        "asimd",
        "asimdhp",
        "fphp",
        "sve",
        "sve2",
        "bf16",
        "i8mm",
    }
)
"""CPU flags that decide which kernels run, hence the rounding of float results: a record computed with AVX-512
and one without can differ in the last bits, which the byte-identity of labels notices."""

CODE_PATHS = ("src", "workflow_scripts", "rules", "Snakefile", "config")
"""The parts of the repository that shape a record's numbers. A changed README, test or results page does not make
the tree dirty."""

UNKNOWN = "unknown (written before provenance was recorded)"
"""How a record without a ``provenance`` key is counted."""

ASPECTS = {
    "code version": ("simmerge", "commit", "dirty"),
    "CPU": ("machine", "cpu", "cpu_flags"),
    "library versions": ("python", "libraries"),
}
"""What records may disagree on, and the provenance fields of each, in the order warnings name them."""


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """The CPU model and its :data:`NUMERIC_CPU_FLAGS` (sorted) from the text of ``/proc/cpuinfo``.

    x86 names them ``model name`` and ``flags``; arm64 says ``Features`` and often gives no model (None).
    """
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, sorted(flags & NUMERIC_CPU_FLAGS)


def machine_cpu() -> tuple[str, list[str]]:
    """This machine's CPU model and its :data:`NUMERIC_CPU_FLAGS` (what a benchmark page names its machine by)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        text = ""
    model, flags = parse_cpuinfo(text)
    return model or platform.processor() or platform.machine(), flags


def describe_machine() -> str:
    """This machine's CPU as a benchmark page names it: the model and its :data:`NUMERIC_CPU_FLAGS`."""
    model, flags = machine_cpu()
    return f"{model} (CPU flags: {', '.join(flags) or 'none of the vector extensions'})"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_state(package_dir: str | Path) -> tuple[str | None, bool | None]:
    """The git commit of the checkout a package directory belongs to, and whether its code differs from it.

    Parameters
    ----------
    package_dir : path
        The directory of the imported package (``src/simmerge`` in a checkout).

    Returns
    -------
    commit : str or None
        ``git rev-parse HEAD``; None when the package is not a tracked file of a git checkout (installed from a
        wheel, no git, or a site-packages inside some other repository, such as a ``.venv`` in a checkout).
    dirty : bool or None
        Whether ``git status`` lists a modified, staged or untracked (not ignored) file under :data:`CODE_PATHS`;
        None without a commit.
    """
    package_dir = Path(package_dir).resolve()
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    # the package's own __init__ must be tracked: a venv inside a checkout is in a git tree but is not its code
    if top is None or _git(package_dir, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    root = Path(top.strip())
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", *CODE_PATHS)
    if commit is None or status is None:
        return None, None
    return commit.strip(), bool(status.strip())


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _provenance() -> dict[str, Any]:
    commit, dirty = code_state(Path(simmerge.__file__).parent)
    cpu, flags = machine_cpu()
    return {
        "simmerge": _version("simmerge") or simmerge.__version__,
        "commit": commit,
        "dirty": dirty,
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_flags": flags,
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def provenance() -> dict[str, Any]:
    """The provenance of the records this process writes (computed once per process; a fresh copy each call).

    Returns
    -------
    dict
        JSON-able: ``simmerge`` (package version), ``commit`` and ``dirty`` (:func:`code_state` of the imported
        package), ``machine`` (``x86_64``, ``aarch64``), ``cpu`` (model name), ``cpu_flags`` (sorted
        :data:`NUMERIC_CPU_FLAGS` of this CPU), ``python`` (version) and ``libraries`` (each of :data:`LIBRARIES`
        → installed version, or None). No timestamp and no host name: records of the same code on the same kind
        of machine stay byte-identical.
    """
    return copy.deepcopy(_provenance())


def weights_sha256(manifest: Mapping[str, Any]) -> str:
    """One digest of a checkpoint's weights, from its manifest: what records cite the checkpoint by.

    The sha256 of ``"<path> <sha256>\\n"`` over the manifest's ``weight_files`` in order, each with its file's
    sha256 from ``files``; the manifest's own ``weights_sha256`` when it has one. A manifest written before the
    digest was recorded gives the same value as a fresh one of the same files.

    Raises
    ------
    KeyError
        If a weight file has no entry in ``files``.
    """
    if manifest.get("weights_sha256"):
        return manifest["weights_sha256"]
    lines = "".join(f"{path} {manifest['files'][path]['sha256']}\n" for path in manifest["weight_files"])
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def describe(record_provenance: Mapping[str, Any] | None) -> str:
    """One line for a provenance: code, CPU and libraries (``unknown ...`` for None)."""
    if record_provenance is None:
        return UNKNOWN
    p = record_provenance
    commit = (p.get("commit") or "no git")[:12] + (" (dirty)" if p.get("dirty") else "")
    flags = ",".join(p.get("cpu_flags") or []) or "none"
    libraries = ", ".join(f"{name} {version}" for name, version in sorted((p.get("libraries") or {}).items()))
    return (
        f"simmerge {p.get('simmerge')} at {commit}; {p.get('cpu')} ({p.get('machine')}, flags: {flags}); "
        f"Python {p.get('python')}, {libraries}"
    )


def _key(record_provenance: Mapping[str, Any] | None) -> str:
    return "" if record_provenance is None else repr(sorted(record_provenance.items()))


@dataclass(frozen=True)
class ProvenanceGroup:
    """Records that share one provenance.

    Attributes
    ----------
    provenance : dict or None
        The shared provenance; None for records written before provenance was recorded.
    kinds : dict of str to int
        Number of records per kind (the first part of their label: ``checkpoints``, ``scores``, ``merges`` …).
    """

    provenance: dict[str, Any] | None
    kinds: dict[str, int]

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    @property
    def description(self) -> str:
        return describe(self.provenance)


@dataclass(frozen=True)
class StaleRecord:
    """A record computed from a checkpoint whose manifest now cites other weights (or is gone)."""

    record: str
    checkpoint: str
    recorded: str
    current: str | None


@dataclass(frozen=True)
class ProvenanceCheck:
    """What :func:`mixed_provenance` found.

    Attributes
    ----------
    groups : list of ProvenanceGroup
        One per distinct provenance, most records first (unknown provenance last).
    stale : list of StaleRecord
        Records whose cited checkpoint weights differ from the current manifests.
    warnings : list of str
        One sentence per problem; empty when every record has one provenance and no record is stale.
    """

    groups: list[ProvenanceGroup]
    stale: list[StaleRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def mixed_provenance(
    records: Mapping[str, Mapping[str, Any]],
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
) -> ProvenanceCheck:
    """Group a run's records by provenance and check the checkpoint weights they cite.

    Parameters
    ----------
    records : mapping of str to mapping
        Label → record, the label a path relative to the run folder (``checkpoints/a/manifest.json``,
        ``merges/a__b/linear.json``): its first part counts as the record's kind. A record's provenance is its
        ``provenance`` value; a model summary's is a mapping of task → provenance (the parts it was assembled
        from), which counts once per distinct value.
    manifests : mapping of str to mapping, optional
        Checkpoint name → its current manifest. A record's ``checkpoints_sha256`` (name → :func:`weights_sha256`
        of the weights it was computed from) is compared with them.

    Returns
    -------
    ProvenanceCheck
        The groups, the stale records, and a warning for each of: records without provenance, records that
        differ in code version, CPU or library versions (naming the values), and stale records.
    """
    manifests = manifests or {}
    counts: dict[str, Counter[str]] = {}
    values: dict[str, dict[str, Any] | None] = {}
    stale = []
    for label, record in records.items():
        kind = label.split("/", 1)[0]
        found = record.get("provenance")
        # a summary holds one provenance per task part; a mapping without a version is that kind of mapping
        parts = found.values() if isinstance(found, Mapping) and "simmerge" not in found else [found]
        for part in {_key(p): p for p in parts}.values():
            counts.setdefault(_key(part), Counter())[kind] += 1
            values[_key(part)] = dict(part) if part is not None else None
        for name, recorded in sorted((record.get("checkpoints_sha256") or {}).items()):
            current = weights_sha256(manifests[name]) if name in manifests else None
            if current != recorded:
                stale.append(StaleRecord(record=label, checkpoint=name, recorded=recorded, current=current))
    groups = sorted(
        (ProvenanceGroup(provenance=values[key], kinds=dict(sorted(kinds.items()))) for key, kinds in counts.items()),
        key=lambda group: (group.provenance is None, -group.count, group.description),
    )
    return ProvenanceCheck(groups=groups, stale=stale, warnings=_warnings(groups, stale))


def _warnings(groups: Sequence[ProvenanceGroup], stale: Sequence[StaleRecord]) -> list[str]:
    warnings = []
    unknown = sum(group.count for group in groups if group.provenance is None)
    if unknown:
        warnings.append(
            f"{unknown} record(s) carry no provenance (written before provenance was recorded): their code, CPU "
            "and library versions are unknown; rerun their rules to be sure the run is consistent."
        )
    known = [group.provenance for group in groups if group.provenance is not None]
    for aspect, fields in ASPECTS.items():
        differences = _differences(known, fields)
        if differences:
            n = len({repr([p.get(name) for name in fields]) for p in known})
            warnings.append(
                f"records mix {n} {aspect}s ({differences}): their numbers may not be comparable; rerun the "
                "older records' rules with one setup."
            )
    dirty = [p for p in known if p.get("dirty")]
    if dirty:
        warnings.append(
            "records were written from a checkout with uncommitted changes: the commit alone does not say "
            "which code made them."
        )
    if stale:
        cited = ", ".join(sorted({entry.checkpoint for entry in stale}))
        warnings.append(
            f"{len(stale)} record(s) were computed from checkpoint weights that the current manifests no longer "
            f"cite (rebuilt or removed since: {cited}); rerun those records' rules."
        )
    return warnings


def _differences(known: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    """The values that differ between provenances, per field (per library for ``libraries``), or ``""``."""
    parts = []
    for name in fields:
        if name == "libraries":
            libraries = sorted({library for p in known for library in p.get(name) or {}})
            seen = {library: {str((p.get(name) or {}).get(library)) for p in known} for library in libraries}
            parts += [f"{library}: {' vs '.join(sorted(v))}" for library, v in seen.items() if len(v) > 1]
            continue
        values = {_short(p.get(name)) for p in known}
        if len(values) > 1:
            parts.append(f"{name}: {' vs '.join(sorted(values))}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "none"
    if isinstance(value, str) and len(value) == 40:  # a commit
        return value[:12]
    return str(value)
