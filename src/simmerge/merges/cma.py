"""CMA-ES over a merge's continuous parameters, every candidate a real mergekit merge scored by lm-eval.

The search a reviewer sets against SimMerge (mergekit-evolve's: CMA-ES over each model's weight and density,
"If You Can't Use Them, Recycle Them"), run on one expert pair at a time (rule ``cma_search``):

- the genome is :class:`simmerge.core.config.CmaSearchSpec`'s genes, searched in the unit cube and mapped onto
  ``[low, high]`` per gene, so one step size fits every gene; each point is an
  :class:`~simmerge.merges.operators.Operator`, checked against mergekit like every grid operator;
- an evaluation merges the pair (:func:`simmerge.merges.merging.merge_pair`) and scores it on the pair's *search*
  items only — the half of the methods comparison's split that searches may spend
  (:func:`simmerge.evaluate.methods.item_halves`) — each item's outcome over the better parent's task metric,
  as the labels normalise it; the objective is the mean over tasks of the per-task means;
- after each generation whose best point is new, that point is merged again and scored on *all* the pair's
  items with exactly the grid's task files, and its score on the held-out half is recorded: the number that
  sits beside every selection method's held-out score, item by item, at the budget spent so far. That
  measurement is not charged to the search, as the methods' held-out scores are not charged to them.

Each job writes one record (:func:`cma_merge_search`): every evaluation (point, parameters, search score, merge
and scoring seconds) and every generation's best with its held-out score.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simmerge.catalog.harness import read_task_record
from simmerge.core.io import scratch_directory
from simmerge.core.provenance import provenance
from simmerge.merges.items import ITEM_KEY
from simmerge.merges.merging import FAILED_MERGE_SCORE, default_scratch_dir, merge_pair
from simmerge.merges.operators import Operator
from simmerge.merges.scoring import score_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Genome:
    """The merges a CMA-ES search can make: a method, its fixed parameters and the searched genes.

    Attributes
    ----------
    spec : mapping
        :class:`simmerge.core.config.CmaSearchSpec` as a mapping (``method``, ``parameters``,
        ``model_parameters``, ``genes``).
    """

    spec: Mapping[str, Any]

    @property
    def genes(self) -> list[Mapping[str, Any]]:
        return list(self.spec["genes"])

    def start(self) -> np.ndarray:
        """The first point, in the unit cube: each gene's ``start``, else the middle of its range."""
        return np.array(
            [
                0.5 if gene.get("start") is None else (gene["start"] - gene["low"]) / (gene["high"] - gene["low"])
                for gene in self.genes
            ]
        )

    def values(self, x: Sequence[float]) -> list[float]:
        """Each gene's value at the unit-cube point ``x`` (rounded to 6 decimals: the YAML mergekit runs)."""
        return [
            round(gene["low"] + float(np.clip(u, 0.0, 1.0)) * (gene["high"] - gene["low"]), 6)
            for gene, u in zip(self.genes, x, strict=True)
        ]

    def parameters(self, x: Sequence[float]) -> dict[str, float]:
        """The searched parameters at ``x`` by name, e.g. ``{"weight@anchor": 0.9, "density@both": 0.4}``."""
        return {f"{gene['key']}@{gene['model']}": value for gene, value in zip(self.genes, self.values(x), strict=True)}

    def operator(self, x: Sequence[float], name: str = "cma") -> Operator:
        """The operator at ``x``: the fixed parameters and every gene in its place; validated against mergekit."""
        global_params = dict(self.spec.get("parameters") or {})
        both = dict(self.spec.get("model_parameters") or {})
        anchor: dict[str, float] = {}
        other: dict[str, float] = {}
        for gene, value in zip(self.genes, self.values(x), strict=True):
            target = {"global": global_params, "both": both, "anchor": anchor, "other": other}[gene["model"]]
            target[gene["key"]] = value
        return Operator(
            name=name,
            method=self.spec["method"],
            parameters=global_params,
            model_parameters=both,
            anchor_parameters=anchor,
            other_parameters=other,
        )


def subset_data_files(
    data_files: Mapping[str, str | os.PathLike], keys: pd.DataFrame, out_dir: str | os.PathLike
) -> tuple[dict[str, Path], dict[str, dict[str, list[int]]]]:
    """Task data restricted to some items, for scoring a merge on them alone.

    A built-in skill's ``eval.jsonl`` is cut to the lines of the items (lm-eval numbers the documents of the cut
    file from 0: the map gives each new number's original ``doc_id``); a harness task's ``task.json`` keeps only
    those documents in its ``samples`` (their numbers do not change).

    Parameters
    ----------
    data_files : mapping
        Task → its data file, as the merge jobs get it.
    keys : pandas.DataFrame
        The items: ``task``, ``subtask``, ``doc_id``.
    out_dir : path-like
        A new folder for the cut files.

    Returns
    -------
    (data_files, doc_ids)
        The cut files, and per built-in task and subtask, the original ``doc_id`` of each document the cut run
        numbers 0, 1, ... (a harness task keeps its numbers and has no entry).
    """
    out = Path(out_dir)
    files: dict[str, Path] = {}
    original: dict[str, dict[str, list[int]]] = {}
    for task, group in keys.groupby("task", sort=False):
        source = Path(data_files[task])
        folder = out / str(task)
        folder.mkdir(parents=True)
        record = read_task_record(source.parent)
        if record is None:
            ids = sorted(int(i) for i in group["doc_id"])
            lines = source.read_text(encoding="utf-8").splitlines()
            missing = [i for i in ids if i >= len(lines)]
            if missing:
                raise KeyError(f"task {task!r}: items {missing[:5]} are beyond the {len(lines)} lines of {source}")
            (folder / source.name).write_text("".join(lines[i] + "\n" for i in ids), encoding="utf-8")
            original[task] = {str(subtask): ids for subtask in group["subtask"].unique()}
        else:
            wanted = {str(s): sorted(int(i) for i in g["doc_id"]) for s, g in group.groupby("subtask", sort=False)}
            record = {**record, "samples": {leaf: wanted.get(leaf, []) for leaf in record["samples"]}}
            (folder / "task.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        files[task] = folder / source.name
    return files, original


def normalised_items(
    items: Mapping[str, pd.DataFrame], best_parent: Mapping[str, float], doc_ids: Mapping[str, Mapping[str, list[int]]]
) -> pd.DataFrame:
    """Scored items as the labels hold them: ``task``, ``subtask``, ``doc_id`` (the original numbers) and ``value``,
    the item's primary metric over the better parent's task metric (NaN where that is 0)."""
    frames = []
    for task, table in items.items():
        table = table.copy()
        mapping = doc_ids.get(task)
        if mapping is not None:
            table["doc_id"] = [
                mapping[str(subtask)][int(doc)] for subtask, doc in zip(table["subtask"], table["doc_id"], strict=True)
            ]
        best = best_parent.get(task)
        table["value"] = table["score"].astype(float) / best if best else math.nan
        frames.append(table[[*ITEM_KEY, "value"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ITEM_KEY, "value"])


def best_parent_metrics(labels: pd.DataFrame, a: str, b: str) -> dict[str, float]:
    """Task → the better parent's metric for the pair (a, b), from its label rows (what the labels divide by)."""
    rows = labels[((labels["a"] == a) & (labels["b"] == b)) | ((labels["a"] == b) & (labels["b"] == a))]
    if rows.empty:
        raise KeyError(f"no label rows for the pair ({a}, {b})")
    best = rows[["parent_score_a", "parent_score_b"]].max(axis=1)
    return {str(task): float(value) for task, value in best.groupby(rows["task"], sort=False).max().items()}


def task_mean_on(keys: pd.DataFrame, scored: pd.DataFrame) -> float:
    """The mean over tasks of the per-task mean ``value`` of ``scored`` on exactly the items ``keys``."""
    joined = keys.merge(scored, on=ITEM_KEY, how="left", validate="1:1")
    if joined["value"].isna().any():
        missing = joined.loc[joined["value"].isna(), ITEM_KEY].head(3).to_dict("records")
        raise KeyError(f"the scored merge lacks items the search needs, e.g. {missing}")
    return float(joined.groupby("task", sort=True)["value"].mean().mean())


def cma_merge_search(
    genome: Genome,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    search_keys: pd.DataFrame,
    held_out_keys: pd.DataFrame,
    best_parent: Mapping[str, float],
    task_dir: str | os.PathLike,
    data_files: Mapping[str, str | os.PathLike],
    budget: int,
    popsize: int,
    sigma0: float,
    seed: int,
    items: int | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    scratch_dir: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    exact_match: str = "one_pass",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Search one pair's merge parameters with CMA-ES and record what each generation's best scores held out.

    Parameters
    ----------
    genome : Genome
        What is searched.
    a_dir, b_dir, base_dir : path-like
        The pair (a is the anchor of ``anchor`` genes) and the catalog base.
    search_keys, held_out_keys : pandas.DataFrame
        ``task``, ``subtask``, ``doc_id`` of the pair's search half (in the split's order) and held-out half.
    best_parent : mapping
        Task → the better parent's metric, the normaliser of every item.
    task_dir, data_files, batch_size, limit, device, threads, exact_match, dtype
        As :func:`simmerge.merges.scoring.score_checkpoint`; ``limit`` applies to the held-out scoring only (the
        search items already lie within it).
    budget, popsize, sigma0, seed
        CMA-ES: evaluations at most, population, step size (fraction of each gene's range), seed.
    items : int, optional
        Score each evaluation on the first ``items`` search items only (default: all of them).
    scratch_dir : path-like, optional
        Where merges live while scored (default: :func:`simmerge.merges.merging.default_scratch_dir`).
    trust_remote_code : bool
        As :func:`simmerge.merges.merging.merge_pair`.

    Returns
    -------
    dict
        ``genes``, ``budget``, ``popsize``, ``sigma0``, ``seed``, ``search_items`` (items per evaluation),
        ``held_out_items``, ``evaluations`` (per evaluation: ``generation``, ``x``, ``parameters``,
        ``status``, ``search_score``, ``merge_seconds``, ``score_seconds``), ``generations`` (per generation:
        ``evaluations`` spent so far, the best point's ``parameters`` and ``search_score``, its
        ``held_out_score`` and its mergekit ``config_yaml``), ``wall_seconds`` and ``provenance``.
    """
    from simmerge.evaluate.search import cma_maximise

    started = time.perf_counter()
    searched = search_keys.iloc[: items or len(search_keys)].reset_index(drop=True)
    if scratch_dir is None:
        scratch_dir = default_scratch_dir()
    scoring = {
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "trust_remote_code": trust_remote_code,
        "exact_match": exact_match,
        "dtype": dtype,
    }
    evaluations: list[dict[str, Any]] = []

    def merged_and_scored(
        x: np.ndarray,
        keys: pd.DataFrame,
        files: Mapping[str, str | os.PathLike],
        doc_ids: Mapping[str, Mapping[str, list[int]]],
        run_limit: int | None,
    ) -> tuple[dict[str, Any], float, float]:
        """Merge at ``x`` and score the merge on ``files``; a failed merge scores 0 on every item."""
        operator = genome.operator(x)
        with scratch_directory("simmerge-cma-", scratch_dir) as scratch:
            merged = Path(scratch) / "merged"
            record = merge_pair(
                operator, a_dir, b_dir, base_dir, merged, seed=seed, device=device, threads=threads,
                trust_remote_code=trust_remote_code,
            )  # fmt: skip
            if record["status"] != "ok":
                return record, FAILED_MERGE_SCORE, 0.0
            scoring_start = time.perf_counter()
            scores = score_checkpoint(merged, task_dir, files, limit=run_limit, **scoring)
            value = task_mean_on(keys, normalised_items(scores["items"], best_parent, doc_ids))
            return record, value, time.perf_counter() - scoring_start

    with scratch_directory("simmerge-cma-data-", None) as data_scratch:
        search_files, search_ids = subset_data_files(data_files, searched, data_scratch)

        def objective(x: np.ndarray) -> float:
            record, value, score_seconds = merged_and_scored(x, searched, search_files, search_ids, None)
            evaluations.append(
                {
                    "generation": len(evaluations) // popsize + 1,
                    "x": [round(float(u), 6) for u in x],
                    "parameters": genome.parameters(x),
                    "status": record["status"],
                    "error": record["error"],
                    "search_score": value,
                    "merge_seconds": record["wall_seconds"],
                    "score_seconds": round(score_seconds, 3),
                }
            )
            log.info("evaluation %d %s: %s, search score %.4f", len(evaluations), evaluations[-1]["parameters"],
                     record["status"], value)  # fmt: skip
            return value

        steps = cma_maximise(
            objective,
            genome.start(),
            sigma0=sigma0,
            bounds=([0.0] * len(genome.genes), [1.0] * len(genome.genes)),
            budget=budget,
            seed=seed,
            popsize=popsize,
        )
    generations: list[dict[str, Any]] = []
    for step in steps:
        parameters = genome.parameters(step.best_x)
        if generations and generations[-1]["parameters"] == parameters:
            generations.append({**generations[-1], "evaluations": step.evaluations})
            continue
        record, held_out, _ = merged_and_scored(step.best_x, held_out_keys, data_files, {}, limit)
        generations.append(
            {
                "evaluations": step.evaluations,
                "parameters": parameters,
                "search_score": step.best_value,
                "held_out_score": held_out,
                "status": record["status"],
                "config_yaml": record["config_yaml"],
            }
        )
    return {
        "method": genome.spec["method"],
        "genes": genome.genes,
        "budget": budget,
        "popsize": popsize,
        "sigma0": sigma0,
        "seed": seed,
        "search_items": len(searched),
        "held_out_items": len(held_out_keys),
        "evaluations": evaluations,
        "generations": generations,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "provenance": provenance(),
    }
