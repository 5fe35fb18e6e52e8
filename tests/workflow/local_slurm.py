"""The one-node SLURM cluster of .ci/local-slurm, and the project's SLURM profile adapted to it, for the tests."""

from __future__ import annotations

import collections
import contextlib
import copy
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from snakemake_runner import REPO

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
START = REPO / ".ci" / "local-slurm" / "start.sh"
STOP = REPO / ".ci" / "local-slurm" / "stop.sh"
CLUSTER_BASE = Path("/tmp/simmerge-local-slurm")
# Ports and /etc/slurm/slurm.conf are machine-wide: one test cluster at a time, across concurrent test runs too.
CLUSTER_LOCK = Path("/tmp/simmerge-local-slurm.lock")
# The node offers four times its cores. A smoke job computes for seconds, but the executor sees it end only at its
# next status check, and the checks back off by 10 s after each one that finds no job ended (1, 11, 21 s, ...): with
# more jobs running at once, checks find ended jobs more often and the waits overlap.
NODE_CPUS = 4 * (os.cpu_count() or 1)
# start.sh's exit statuses that mean "this machine cannot host the cluster" rather than "the cluster is broken".
START_CANNOT_INSTALL, START_REFUSED = 3, 4

# Everything a one-node test cluster needs changed in profiles/slurm; the rest of the profile is used as it is.
LOCAL_CLUSTER_SETTINGS = {
    # No slurmdbd, so sacct cannot answer; with its default status command the plugin would wait for ever.
    "slurm-status-command": "squeue",
    # The plugin's first status check comes after 40 s by default: minutes over a run of short jobs.
    "slurm-init-seconds-before-status-checks": 1,
}
# The test cluster has one default partition, no GPU and no accounts: sbatch would refuse the profile's partitions
# and GPU requests, and its account is a placeholder the user edits.
LOCAL_CLUSTER_DROPPED_RESOURCES = ("slurm_account", "slurm_partition", "gpu")
# The node has ~23 GB: sbatch would refuse the profile's 7B-sized requests, and the smoke catalog needs far less.
LOCAL_CLUSTER_MEM_MB = 1000


def local_cluster_profile(profile: dict) -> dict:
    """``profile`` (a parsed profiles/slurm/config.yaml) with the local cluster's overrides, and only those."""
    derived = copy.deepcopy(profile)
    derived.update(LOCAL_CLUSTER_SETTINGS)
    for resources in (derived["default-resources"], *derived["set-resources"].values()):
        for key in LOCAL_CLUSTER_DROPPED_RESOURCES:
            resources.pop(key, None)
        if "mem_mb" in resources:
            resources["mem_mb"] = LOCAL_CLUSTER_MEM_MB
    return derived


def write_local_cluster_profile(folder: Path) -> Path:
    """Write the adapted profile to ``folder``/config.yaml and return ``folder`` (what ``--profile`` takes)."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    (folder / "config.yaml").write_text(yaml.safe_dump(local_cluster_profile(profile), sort_keys=False))
    return folder


def cannot_host_a_cluster() -> str | None:
    """Why this machine cannot start the test cluster, when that is clear before trying; else None."""
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (its daemons run as root and it writes /etc/slurm/slurm.conf)"
    return None


class ClusterUnavailable(RuntimeError):
    """The machine cannot host the test cluster (packages not installable, or start.sh refused)."""


@contextlib.contextmanager
def local_cluster(lock_timeout: float = 1200) -> Iterator[None]:
    """Run the test cluster for the duration of the block.

    Waits for the machine-wide lock (another test run's cluster), stops what a killed earlier run may have left
    (by its saved PIDs only) and wipes its state, so that squeue lists this run's jobs only; always stops the
    cluster on the way out.
    """
    env = {**os.environ, "SLURM_BASE": str(CLUSTER_BASE), "SLURM_NODE_CPUS": str(NODE_CPUS)}
    with CLUSTER_LOCK.open("w") as lock:
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"another test run held {CLUSTER_LOCK} for {lock_timeout:.0f} s") from None
                time.sleep(2)
        try:
            subprocess.run(["bash", str(STOP)], env=env, check=True, capture_output=True, timeout=60)
            shutil.rmtree(CLUSTER_BASE, ignore_errors=True)
            result = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=300)
            if result.returncode in (START_CANNOT_INSTALL, START_REFUSED):
                raise ClusterUnavailable(result.stderr.strip())
            if result.returncode != 0:
                raise RuntimeError(f"start.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
            yield
        finally:
            subprocess.run(["bash", str(STOP)], env=env, capture_output=True, timeout=60)


def slurm_jobs_by_rule() -> dict[str, collections.Counter]:
    """Rule → Counter of final states of the cluster's jobs, from squeue (finished jobs stay listed for an hour).

    The SLURM plugin names each job's rule in its comment: ``rule_<rule>`` or ``rule_<rule>_wildcards_<values>``.
    """
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%k|%T"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    jobs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in out.splitlines():
        comment, state = line.rsplit("|", 1)
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        jobs[rule][state] += 1
    return dict(jobs)
