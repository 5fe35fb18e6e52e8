"""Multi-way merges, executed: plan a candidate set with real probe merges, merge a node, score it.

The I/O half of the multi-way stage: these functions run mergekit, probe passes and lm-eval and read the run's
files; the trees, the planner and the baselines they execute are pure (:mod:`simmerge.multiway.planning`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.core.io import scratch_directory
from simmerge.evaluate.predictor import load_predictor
from simmerge.features.definitions import feature_names
from simmerge.features.pairs import pair_features
from simmerge.features.probe_pass import summarise_checkpoint
from simmerge.merges.merging import run_merge_config, score_merge
from simmerge.merges.operators import Operator, multi_model_config
from simmerge.merges.scoring import read_scores
from simmerge.multiway.planning import (
    MODEL_STOCK,
    Merge,
    Model,
    Plan,
    expression,
    node_id,
    operator_specs,
    plan_merge,
)


def read_expert_scores(paths: Iterable[str | os.PathLike]) -> dict[str, dict[str, float]]:
    """Expert → task → primary-metric score, from ``scores/experts/<name>/<task>.json`` records."""

    return {
        name: {task: value["score"] for task, value in record["tasks"].items()}
        for name, record in read_scores(paths).items()
    }


def merge_node(
    node: Mapping[str, Any],
    input_dirs: Sequence[str | os.PathLike],
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    merge_seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Merge one node of a recipe (``build_recipes``' ``nodes`` entry) from its inputs' checkpoints.

    Two inputs go through the operator's pair config (the first is the anchor); more through its all-at-once
    config; model_stock through mergekit's own N-model contract. A failed merge is recorded, as in
    :func:`simmerge.merges.merging.merge_pair`; ``trust_remote_code`` is passed to mergekit and recorded, so the
    node's scoring uses the same setting.
    """

    spec = node["operator"]
    operator = None if spec["method"] == MODEL_STOCK else Operator.model_validate(spec)
    randomised = operator is not None and bool(operator.randomised)
    record = {"expression": node["expression"], "operator": spec["name"], "seed": merge_seed if randomised else None}
    missing = [str(path) for path in input_dirs if not (Path(path) / "config.json").is_file()]
    if missing:  # an input merge failed earlier: so does this one, without calling mergekit
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        error = f"input merge failed (no checkpoint): {', '.join(missing)}"
        return {
            **record,
            "status": "failed",
            "error": error,
            "wall_seconds": 0.0,
            "trust_remote_code": trust_remote_code,
        }
    if operator is None:
        config = multi_model_config(MODEL_STOCK, input_dirs, base_dir)
    elif len(input_dirs) == 2:
        config = operator.to_mergekit_config(*input_dirs, base_dir, seed=merge_seed)
    else:
        config = operator.to_mergekit_config_all(input_dirs, base_dir, seed=merge_seed)
    merged = run_merge_config(
        config,
        base_dir,
        out_dir,
        seed=merge_seed if randomised else 0,
        label=node["expression"],
        device=device,
        threads=threads,
        trust_remote_code=trust_remote_code,
    )
    return {**record, **merged}


def plan_set(
    candidates: Sequence[str],
    tasks: Sequence[str],
    *,
    max_size: int,
    beam_width: int,
    min_gain: float,
    operators: Mapping[str, Operator],
    predictor_path: str | os.PathLike,
    checkpoints: Mapping[str, str | os.PathLike],
    summaries: Mapping[str, str | os.PathLike],
    base: str,
    expert_scores: Mapping[str, Mapping[str, float]],
    probe_files: Mapping[str, str | os.PathLike],
    feature_spec: Mapping[str, Any],
    seed: int,
    merge_seed: int,
    probes_dir: str | os.PathLike,
    scratch_dir: str | os.PathLike | None = None,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> Plan:
    """:func:`plan_merge` with the run's predictor: the body of the ``multiway_plan`` rule.

    ``predict`` computes the pair features of two models from their probe summaries (experts: the run's
    ``features/models/<name>.npz``; intermediate merges: a probe pass written to ``probes_dir/<node id>.npz``
    with the run's feature settings and seed) and asks the predictor for every operator. ``materialise`` merges
    an intermediate with mergekit into ``scratch_dir`` (deleted afterwards) and runs that probe pass; nothing
    is evaluated.

    Parameters
    ----------
    checkpoints, summaries : mapping
        Checkpoint directory and summary ``.npz`` of every candidate and of the base (``base``).
    expert_scores : mapping
        Candidate → task → measured score.
    probe_files : mapping
        Every catalog task → its ``probe.jsonl`` (the summaries cover every task).
    feature_spec : mapping
        The ``features`` section of the config.
    trust_remote_code : bool
        Passed to the intermediate merges and their probe passes: true only when the base and every candidate
        allow their own modelling code.
    """

    predictor = load_predictor(predictor_path, feature_columns=feature_names(), operators=list(operators))
    specs = operator_specs(operators)
    known = {name: Path(path) for name, path in summaries.items()}
    probes = Path(probes_dir)
    probes.mkdir(parents=True, exist_ok=True)
    top_fraction = float(feature_spec["top_fraction"])

    with scratch_directory("simmerge-plan-", scratch_dir) as scratch:
        merged: dict[str, Path] = {}

        def checkpoint_of(model: Model) -> Path:
            if isinstance(model, str):
                return Path(checkpoints[model])
            if expression(model) not in merged:
                materialise(model)
            return merged[expression(model)]

        def materialise(model: Merge) -> None:
            key = expression(model)
            if key in known:
                return
            identity = node_id(model, specs, merge_seed)
            out = Path(scratch) / identity
            node = {"expression": key, "operator": specs[model.operator]}
            inputs = [checkpoint_of(child) for child in model.inputs]
            record = merge_node(
                node,
                inputs,
                checkpoints[base],
                out,
                merge_seed=merge_seed,
                device=device,
                threads=threads,
                trust_remote_code=trust_remote_code,
            )
            if record["status"] != "ok":
                raise RuntimeError(f"planning merge {key} failed, so it cannot be probed: {record['error']}")
            merged[key] = out
            summary = probes / f"{identity}.npz"
            summarise_checkpoint(
                out,
                checkpoints[base],
                probe_files,
                summary,
                name=identity,
                spec=feature_spec,
                seed=seed,
                device=device,
                threads=threads,
                trust_remote_code=trust_remote_code,
            )
            known[key] = summary

        def predict(first: Model, second: Model) -> pd.DataFrame:
            table = pair_features(
                known[expression(first)], known[expression(second)], known[base], top_fraction=top_fraction
            )
            table = table[table["task"].isin(tasks)]
            rows = pd.concat([table.assign(operator=name) for name in operators], ignore_index=True)
            predicted, spread = predictor.predict(rows[list(predictor.feature_names_in_)], return_std=True)
            return rows[["task", "operator"]].assign(predicted=predicted, uncertainty=spread)

        sensitive = {name: bool(operator.order_sensitive) for name, operator in operators.items()}
        return plan_merge(
            candidates,
            tasks,
            expert_scores,
            sensitive,
            predict,
            materialise,
            max_size=max_size,
            beam_width=beam_width,
            min_gain=min_gain,
        )


def score_node(
    node_dir: str | os.PathLike,
    merge_record: Mapping[str, Any],
    reference: Mapping[str, float],
    *,
    task_dir: str | os.PathLike,
    data_files: Mapping[str, str | os.PathLike],
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    exact_match: str = "one_pass",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Score a merged node on the set's target tasks; normalise each task by the best candidate expert.

    :func:`simmerge.merges.merging.score_merge` with the best candidate expert as the one reference: a failed
    merge scores :data:`simmerge.merges.merging.FAILED_MERGE_SCORE` on every task, as in the 2-way labels. The
    record's ``items`` are the per-item outcomes (a DataFrame the caller writes beside the record and pops).
    """
    scored = score_merge(
        node_dir,
        merge_record,
        [reference],
        list(reference),
        task_dir=task_dir,
        data_files=data_files,
        batch_size=batch_size,
        limit=limit,
        device=device,
        threads=threads,
        exact_match=exact_match,
        dtype=dtype,
    )
    record: dict[str, Any] = {
        "items": scored["items"],
        "expression": merge_record["expression"],
        "status": merge_record["status"],
    }
    if merge_record["status"] != "ok":
        record["error"] = merge_record.get("error")
    record.update(
        # per task as in a 2-way run, less the item count and task version, which node records do not carry
        tasks={
            task: {key: value for key, value in entry.items() if key not in ("n", "version")}
            for task, entry in scored["tasks"].items()
        },
        target_score=scored["score"],
        **{key: scored[key] for key in ("eval_seconds", "lm_eval_version", "device", "dtype") if key in scored},
        exact_match=exact_match,
    )
    return record
