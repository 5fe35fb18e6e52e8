"""Helpers of the workflow tests: run Snakemake in a copy of the repository and read its job list."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPIED = ["Snakefile", "rules", "workflow_scripts", "config", "envs", "profiles", "report", "reference"]

ANCHORED = {"slerp", "nuslerp", "nearswap", "arcee_fusion"}
# Jobs that read every label: re-run whenever a merge changes.
LABEL_AGGREGATES = {
    "labels": 1,
    "operator_ranking": 1,
    "predictor": 1,
    "compare": 3,
    "compare_summary": 1,
    "search": 1,
    "bandit_replay": 1,
    "report": 1,
    "results_page": 1,
}


def aggregates(config: dict) -> dict[str, int]:
    """Jobs a change of the labels re-runs: the label aggregates, and per multi-way set its plan (the predictor
    changed), recipes and summary. The merges and scores of a set's recipes are known only once its recipes
    checkpoint has run, so a dry-run does not list them."""
    n_sets = len(config.get("multiway", {}).get("sets", []))
    multiway = {"multiway_plan": n_sets, "multiway_recipes": n_sets, "multiway_summary": n_sets, "multiway_table": 1}
    n_transfers = len(config.get("predictor", {}).get("transfer_from", []))
    return {**LABEL_AGGREGATES, **(multiway if n_sets else {}), **({"transfer": n_transfers} if n_transfers else {})}


def copy_workflow(root: Path) -> Path:
    """Copy the workflow's files (not results/ or .snakemake/) into ``root``."""
    root.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    return root


def run_snakemake(
    root: Path, *args: str, check: bool = True, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``root``; ``env`` adds to this process's environment. On ``timeout`` the process is killed
    (SIGKILL: Snakemake may ignore SIGTERM while it waits on jobs)."""
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


@contextlib.contextmanager
def background_snakemake(root: Path, *args: str, log: Path) -> Iterator[subprocess.Popen]:
    """Snakemake started in ``root`` while the block runs, its output going to ``log``. Left before it ended, it is
    killed with every process it started (SIGKILL to its process group)."""
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [SNAKEMAKE, "--cores", "2", *args], cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for_snakemake(process: subprocess.Popen, log: Path, deadline: float) -> str:
    """Wait until ``process`` (from background_snakemake) ends, at the latest at ``deadline`` (time.monotonic()),
    and return its output; a failure or the deadline is an AssertionError showing the end of that output."""
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        problem = "is still running at its deadline"
    else:
        problem = f"failed ({process.returncode})" if process.returncode else None
    output = log.read_text(encoding="utf-8")
    if problem:
        raise AssertionError(f"snakemake {problem}:\n{output[-6000:]}")
    return output


def dry_run_counts(root: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that a dry-run would execute (from Snakemake's job-stats table)."""
    result = run_snakemake(root, *args, "--dry-run", "--quiet", "rules")
    counts: dict[str, int] = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_][\w]*)\s+(\d+)\s*", line)
        if match and match.group(1) not in {"total", "job", "count"}:
            counts[match.group(1)] = int(match.group(2))
    return counts


def dry_run_jobs(root: Path, *args: str) -> list[dict]:
    """Every job a dry-run would execute, from Snakemake's job listing: ``rule``, ``wildcards`` (a dict),
    ``output`` and ``log`` (lists of paths) and ``benchmark`` (a path or None)."""
    result = run_snakemake(root, *args, "--dry-run")
    jobs: list[dict] = []
    for line in (result.stdout + result.stderr).splitlines():
        header = re.fullmatch(r"(?:local)?(?:rule|checkpoint) (\w+):", line.strip())
        if header:
            jobs.append({"rule": header.group(1), "wildcards": {}, "output": [], "log": [], "benchmark": None})
            continue
        key, _, value = line.strip().partition(": ")
        if not jobs or not value:
            continue
        if key in {"output", "log"}:
            jobs[-1][key] = value.split(", ")
        elif key == "benchmark":
            jobs[-1]["benchmark"] = value
        elif key == "wildcards":
            jobs[-1]["wildcards"] = dict(item.split("=", 1) for item in value.split(", "))
    return jobs


def write_config(root: Path, name: str, config: dict) -> str:
    path = root / "config" / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(path.relative_to(root))


def load_config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text(encoding="utf-8"))


def pretend_complete(root: Path, *args: str) -> int:
    """Create every output of the workflow, and every job's benchmark file, as an empty file and record it as made
    by this config.

    ``snakemake --touch`` then stores the jobs' provenance (params, code), so a later dry-run shows exactly
    what a config change would re-run, without running the expensive jobs first. An output without a suffix is
    a ``directory()`` output and becomes an empty directory; a multi-way recipes checkpoint gets an empty recipe
    list instead of an empty file, since the workflow reads it to build the DAG. Benchmark files are made too:
    the results page reads them, so a missing one would re-run its job (``--touch`` only touches outputs).
    """
    result = run_snakemake(root, "--summary", *args)
    outputs = [line.split("\t")[0] for line in result.stdout.splitlines()[1:] if "\t" in line]
    plan = run_snakemake(root, "--dry-run", *args)
    outputs += re.findall(r"^\s*benchmark: (\S+)$", plan.stdout + plan.stderr, flags=re.MULTILINE)
    stamp = 1_700_000_000
    for output in outputs:
        path = root / output
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.suffix:
            path.mkdir(exist_ok=True)
        elif path.name == "recipes.json":
            path.write_text('{"approaches": {}, "nodes": {}}', encoding="utf-8")
        else:
            path.touch()
        os.utime(path, (stamp, stamp))
    run_snakemake(root, "--touch", *args)
    return len(outputs)
