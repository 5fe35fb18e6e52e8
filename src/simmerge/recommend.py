"""``simmerge recommend``: predict every operator and order for two checkpoints and write the best as mergekit YAML.

The two checkpoints are catalog experts of a finished run, or Hugging Face directories that share the run's base.
What is missing is computed the way the workflow computes it (a probe pass with the run's feature settings and
seed, then the pair features against the run's base summary); nothing is merged or evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.catalog.build import checkpoint_dir, preflight
from simmerge.core.config import ConfigError
from simmerge.core.layout import RunLayout
from simmerge.evaluate.predictor import load_predictor
from simmerge.features.definitions import feature_names
from simmerge.features.pairs import pair_features
from simmerge.features.probe_pass import summarise_checkpoint
from simmerge.merges.merging import config_yaml
from simmerge.run import Catalog


@dataclass(frozen=True)
class Member:
    """One side of the pair: its name in the tables, its checkpoint directory and its model summary."""

    name: str
    checkpoint: Path
    summary: Path


def resolve_member(spec: str, catalog: Catalog, layout: RunLayout) -> Member:
    """A catalog expert of the run, or a checkpoint directory (pre-flight checked, and probed into the run's
    :meth:`~simmerge.core.layout.RunLayout.recommend_summary` unless it already is).

    Raises
    ------
    ConfigError
        If ``spec`` is neither an expert of the catalog nor a directory with a ``config.json``.
    PreflightError
        If a directory fails the catalog's pre-flight (:func:`simmerge.catalog.build.preflight`): its config.json vs
        its weights, the base's architecture, tensors and tokenizer, safetensors, custom code, finite weights.
    """

    if spec in catalog.expert_names:
        manifest = layout.checkpoint_manifest(spec)
        summary = layout.model_summary(spec)
        missing = [str(path) for path in (manifest, summary) if not path.is_file()]
        if missing:
            raise ConfigError(
                f"{spec!r} is in the catalog but not built in {layout.root}: missing {', '.join(missing)}"
            )
        return Member(spec, checkpoint_dir(manifest), summary)
    directory = Path(spec).expanduser().resolve()
    if not (directory / "config.json").is_file():
        raise ConfigError(
            f"{spec!r} is neither an expert of the catalog ({', '.join(catalog.expert_names)}) nor a checkpoint "
            "directory with a config.json"
        )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.name).strip("-.") or "checkpoint"
    # The catalog's own pre-flight; a directory outside the catalog has no entry that could allow its own code.
    preflight(
        directory,
        name=name,
        source={"trust_remote_code": False},
        base_manifest=str(layout.checkpoint_manifest(catalog.base.name)),
    )
    summary = layout.recommend_summary(name)
    if not summary.is_file():
        config = catalog.config
        summarise_checkpoint(
            directory,
            checkpoint_dir(layout.checkpoint_manifest(catalog.base.name)),
            {task: layout.task_data(task, "probe") for task in catalog.tasks},
            summary,
            name=name,
            spec=config.features.model_dump(),
            seed=config.seed,
            trust_remote_code=False,
        )
    return Member(name, directory, summary)


def predict_pair(
    a: Member,
    b: Member,
    catalog: Catalog,
    layout: RunLayout,
    tasks: list[str],
) -> pd.DataFrame:
    """Predicted mean normalised score ± uncertainty of every operator (and order) for the pair.

    Returns
    -------
    pandas.DataFrame
        One row per candidate, best first: ``operator``, ``anchor`` (order-sensitive operators; empty
        otherwise), ``predicted``, ``uncertainty`` (spread over the cross-validation fold models).
    """

    operators = list(catalog.operators)
    predictor = load_predictor(layout.predictor_model, feature_columns=feature_names(), operators=operators)
    base_summary = layout.model_summary(catalog.base.name)
    top_fraction = catalog.config.features.top_fraction
    rows = []
    for first, second in ((a, b), (b, a)):
        table = pair_features(first.summary, second.summary, base_summary, top_fraction=top_fraction)
        table = table[table["task"].isin(tasks)]
        for operator in operators:
            rows.append(table.assign(a=first.name, b=second.name, operator=operator))
    frame = pd.concat(rows, ignore_index=True)
    sensitive = frame["operator"].map({name: operator.order_sensitive for name, operator in catalog.operators.items()})
    return predictor.select(frame[list(predictor.feature_names_in_)], anchor=frame["a"].where(sensitive, ""))


def recommendation_yaml(best: dict[str, Any], a: Member, b: Member, catalog: Catalog, layout: RunLayout) -> str:
    """The mergekit YAML of the best candidate: absolute paths, the anchor first for an order-sensitive one."""

    operator = catalog.operators[best["operator"]]
    first, second = (b, a) if best["anchor"] == b.name else (a, b)
    base = checkpoint_dir(layout.checkpoint_manifest(catalog.base.name))
    seed = catalog.merge_seed if operator.randomised else None
    config = operator.to_mergekit_config(first.checkpoint, second.checkpoint, base, seed=seed)
    header = (
        f"# simmerge recommend: {best['operator']}"
        + (f" with {best['anchor']} as anchor" if best["anchor"] else "")
        + f", predicted normalised score {best['predicted']:.3f} ± {best['uncertainty']:.3f}\n"
    )
    if operator.randomised:
        header += f"# run with: mergekit-yaml <this file> <out dir> --random-seed {seed}\n"
    return header + config_yaml(config)


__all__ = ["Member", "predict_pair", "recommendation_yaml", "resolve_member"]
