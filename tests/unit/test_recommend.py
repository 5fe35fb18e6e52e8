"""Tests of simmerge.recommend: on a constructed run, the recommendation is the candidate the predictor scores highest.

The run holds what ``simmerge recommend`` reads from a finished run of the smoke config: synthetic model
summaries (:mod:`synthetic_summaries`) of the base and two experts, their manifests, and a predictor. The predictor
is a stand-in with known scores, put where the run's predictor is loaded, so the test checks how recommend
turns per-row predictions into a ranked choice and a mergekit YAML, not how a predictor learns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from shipped_configs import REPO, read_config
from synthetic_summaries import Synth

import simmerge.recommend
from simmerge.core.config import ConfigError
from simmerge.core.io import write_json
from simmerge.core.layout import RunLayout
from simmerge.evaluate.predictor import SimMergePredictor
from simmerge.features.definitions import feature_names
from simmerge.recommend import Member, predict_pair, recommendation_yaml, resolve_member
from simmerge.run import load

# Predicted normalised score per operator; slerp_t30 (order-sensitive) depends on which expert is the anchor.
SCORES = {"linear": 0.5, "ties_d50": 0.7, "slerp_t30": {"fr": 0.6, "arc": 0.9}}


class KnownScores(SimMergePredictor):
    """A fitted predictor with known answers; it records how it was loaded and what it was asked.

    Only ``predict`` is replaced: ranking the candidates is the predictor's own ``select``. A real predictor
    tells the orders apart by the pair's directional features; this one reads the rows' ``a`` (and ``b`` and
    ``task``, to record them), so it declares those columns among its inputs and recommend hands them over.
    """

    def __init__(self):
        super().__init__()
        self.loads: list[dict] = []
        self.rows: list[pd.DataFrame] = []
        self.feature_names_in_ = np.array([*feature_names(), "operator", "a", "b", "task"], dtype=object)
        self.fold_models_ = []

    def predict(self, X: pd.DataFrame, return_std: bool = False):  # noqa: N803 - scikit-learn's names
        self.rows.append(X)
        predicted = np.array(
            [
                SCORES[op][a] if isinstance(SCORES[op], dict) else SCORES[op]
                for op, a in zip(X["operator"], X["a"], strict=True)
            ]
        )
        return (predicted, 0.01 * X["task"].str.len().to_numpy()) if return_std else predicted


@pytest.fixture
def catalog():
    return load(read_config("smoke.yaml"), workdir=REPO)


def publish(run, name):
    """A built checkpoint of the run: its directory with a config.json and a manifest."""
    folder = run / "checkpoints" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    write_json({"name": name, "source": {"kind": "tiny"}, "files": {}}, folder / "manifest.json")
    return folder


@pytest.fixture
def run(tmp_path, catalog):
    """results/smoke with the base and the experts fr and arc built and summarised."""
    run = tmp_path / "results" / "smoke"
    synth = Synth(tasks=catalog.tasks)
    models = run / "features" / "models"
    models.mkdir(parents=True)
    for name, seed, scale in (("tiny", 0, 0.0), ("fr", 1, 0.5), ("arc", 2, 0.8)):
        publish(run, name)
        synth.model(models, name, seed=seed, scale=scale)
    return run


@pytest.fixture
def predictor(monkeypatch):
    """The stand-in predictor, returned wherever the run's predictor file is loaded."""
    known = KnownScores()

    def load_predictor(path, *, feature_columns=None, operators=None):
        known.loads.append({"path": path, "feature_columns": feature_columns, "operators": operators})
        return known

    monkeypatch.setattr(simmerge.recommend, "load_predictor", load_predictor)
    return known


def test_candidates_are_ranked_by_the_predicted_score(run, catalog, predictor, tmp_path):
    fr, arc = (resolve_member(name, catalog, RunLayout(run)) for name in ("fr", "arc"))
    ranked = predict_pair(fr, arc, catalog, RunLayout(run), ["n2w_fr", "arc_easy"])
    assert list(zip(ranked["operator"], ranked["anchor"], strict=True)) == [
        ("slerp_t30", "arc"),
        ("ties_d50", ""),
        ("slerp_t30", "fr"),
        ("linear", ""),
    ]
    assert ranked["predicted"].tolist() == pytest.approx([0.9, 0.7, 0.6, 0.5])
    # the mean over the two tasks of 0.01 x the task name's length (6 for n2w_fr, 8 for arc_easy)
    assert ranked["uncertainty"].tolist() == pytest.approx([0.07] * 4)
    # the predictor was the run's, checked against this run's features and operators
    (load,) = predictor.loads
    assert load["feature_columns"] == feature_names() and load["operators"] == list(catalog.operators)
    # it saw both orders of the pair with every operator, on the requested tasks only, with the pair's features
    (rows,) = predictor.rows
    assert len(rows) == 2 * 3 * 2
    assert set(zip(rows["a"], rows["b"], strict=True)) == {("fr", "arc"), ("arc", "fr")}
    assert set(rows["task"]) == {"n2w_fr", "arc_easy"}
    assert set(feature_names()) <= set(rows.columns) and rows[feature_names("functional")].notna().all().all()


def test_the_recommendation_is_the_best_candidates_mergekit_yaml_with_its_anchor_first(run, catalog, predictor):
    fr, arc = (resolve_member(name, catalog, RunLayout(run)) for name in ("fr", "arc"))
    best = predict_pair(fr, arc, catalog, RunLayout(run), ["n2w_fr"]).iloc[0].to_dict()
    text = recommendation_yaml(best, fr, arc, catalog, RunLayout(run))
    header, *_ = text.splitlines()
    assert header == "# simmerge recommend: slerp_t30 with arc as anchor, predicted normalised score 0.900 ± 0.060"
    config = yaml.safe_load(text)
    assert config["merge_method"] == "slerp" and config["parameters"] == {"t": 0.3}
    assert [model["model"] for model in config["models"]] == [str(arc.checkpoint), str(fr.checkpoint)]
    assert config["base_model"] == str(arc.checkpoint)


def test_a_symmetric_recommendation_uses_the_run_base_and_names_no_anchor(run, catalog, predictor):
    fr, arc = (resolve_member(name, catalog, RunLayout(run)) for name in ("fr", "arc"))
    best = {"operator": "ties_d50", "anchor": "", "predicted": 0.7, "uncertainty": 0.02}
    text = recommendation_yaml(best, fr, arc, catalog, RunLayout(run))
    assert text.splitlines()[0] == "# simmerge recommend: ties_d50, predicted normalised score 0.700 ± 0.020"
    config = yaml.safe_load(text)
    assert config["base_model"] == str((run / "checkpoints" / "tiny").resolve())
    assert {model["model"] for model in config["models"]} == {str(fr.checkpoint), str(arc.checkpoint)}


def test_a_catalog_expert_resolves_to_the_runs_checkpoint_and_summary(run, catalog):
    member = resolve_member("fr", catalog, RunLayout(run))
    assert member == Member("fr", (run / "checkpoints" / "fr").resolve(), run / "features" / "models" / "fr.npz")


def test_an_expert_that_is_not_built_or_a_path_that_is_no_checkpoint_is_refused(run, catalog, tmp_path):
    with pytest.raises(ConfigError, match=r"'words' is in the catalog but not built in .*: missing .*manifest.json"):
        resolve_member("words", catalog, RunLayout(run))
    with pytest.raises(ConfigError, match=r"neither an expert of the catalog \(fr, arc, words\) nor a checkpoint"):
        resolve_member(str(tmp_path / "nowhere"), catalog, RunLayout(run))
