"""Tests of simmerge.run: the validated run (Catalog) and the catalog checks that run when the workflow is parsed."""

from __future__ import annotations

import copy

import pytest
from shipped_configs import REPO, expect_config_error, read_config

from simmerge.core.config import REPLICATE_SEED_STRIDE, ConfigError
from simmerge.run import check, load


@pytest.fixture
def smoke() -> dict:
    return read_config("smoke.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_load(name):
    catalog = load(read_config(name), workdir=REPO)
    assert catalog.names[0] == catalog.base.name
    assert len(catalog.experts) >= 2


def test_default_catalog_has_the_designed_pairs():
    catalog = load(read_config("config.yaml"), workdir=REPO)
    home = {entry.name: tuple(entry.tasks) for entry in catalog.experts}
    assert len(catalog.experts) >= 5
    assert len({task for tasks in home.values() for task in tasks}) >= 4
    # a near-duplicate pair (same skill twice) and the conflicting French / German pair
    assert list(home.values()).count(("n2w_fr",)) >= 2
    assert ("n2w_de",) in home.values()
    assert len(catalog.tasks) >= 6


def test_duplicate_name(smoke):
    smoke["catalog"]["experts"][1]["name"] = smoke["catalog"]["experts"][0]["name"]
    expect_config_error(smoke, "checkpoint 'fr': name is used twice")


def test_missing_local_directory(smoke, tmp_path):
    missing = tmp_path / "nowhere"
    smoke["catalog"]["experts"][0]["source"] = {"kind": "local", "path": str(missing)}
    expect_config_error(smoke, "checkpoint 'fr'", "source.path", str(missing), "is not a directory")


def test_unknown_home_task(smoke):
    smoke["catalog"]["experts"][0]["tasks"] = ["n2w_xx"]
    expect_config_error(smoke, "checkpoint 'fr'", "'n2w_xx'", "not in `tasks`")


def test_finetune_without_tasks(smoke):
    smoke["catalog"]["experts"][0]["tasks"] = []
    expect_config_error(smoke, "checkpoint 'fr'", "list at least one")


def test_unknown_parent_and_cycle(smoke):
    smoke["catalog"]["experts"][0]["source"]["parent"] = "ghost"
    expect_config_error(smoke, "checkpoint 'fr'", "source.parent 'ghost' is not a catalog entry")
    cyclic = read_config("smoke.yaml")
    cyclic["catalog"]["experts"][0]["source"]["parent"] = "arc"
    cyclic["catalog"]["experts"][1]["source"]["parent"] = "fr"
    expect_config_error(cyclic, "forms a cycle")


def test_seeds_default_to_the_run_seed(smoke):
    catalog = load(smoke, workdir=REPO)
    assert catalog.seed_of("tiny") == smoke["seed"]
    assert catalog.seed_of("fr") == smoke["catalog"]["experts"][0]["source"]["train"]["seed"]
    assert catalog.parent_of("fr") == "tiny"
    assert catalog.parent_of("tiny") is None


def test_a_replicate_shifts_every_experts_seed_and_nothing_else(smoke):
    smoke["catalog"]["experts"][1]["source"]["train"].pop("seed")  # arc takes the run seed
    original = load(copy.deepcopy(smoke), workdir=REPO)
    smoke["catalog"]["replicate"] = 2
    replicate = load(smoke, workdir=REPO)
    shift = 2 * REPLICATE_SEED_STRIDE
    assert [replicate.seed_of(name) for name in ("fr", "arc", "words")] == [1 + shift, smoke["seed"] + shift, 3 + shift]
    assert replicate.seed_of("tiny") == original.seed_of("tiny") == smoke["seed"]  # the same base
    assert replicate.merge_seeds == original.merge_seeds
    assert replicate.predictor_seed == original.predictor_seed


def test_a_part_with_its_own_seed_keeps_it_and_the_others_take_the_run_seed(smoke):
    smoke["seed"] = 7
    for section in ("merges", "predictor", "multiway", "bandit"):
        smoke.setdefault(section, {}).pop("seed", None)
    defaults = load(copy.deepcopy(smoke), workdir=REPO)
    assert [defaults.merge_seed, defaults.predictor_seed, defaults.multiway_seed, defaults.bandit_seed] == [7] * 4
    smoke["merges"]["seed"], smoke["predictor"]["seed"] = 11, 0  # 0 is a seed, not "unset"
    smoke["merges"]["repeats"] = 2
    own = load(smoke, workdir=REPO)
    assert [own.merge_seed, own.predictor_seed, own.multiway_seed, own.bandit_seed] == [11, 0, 7, 7]
    assert own.merge_seeds == [11, 12]


def test_multiway_sets_resolve_their_defaults(smoke):
    catalog = load(smoke, workdir=REPO)
    trio = catalog.multiway_sets["trio"]
    assert trio.checkpoints == ("fr", "arc", "words")
    assert trio.max_size == 3
    assert trio.tasks == ("n2w_fr", "arc_easy", "word_lengths")  # the candidates' home tasks, in task order
    assert catalog.multiway_seed == smoke["seed"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sets": [{"name": "s", "checkpoints": ["fr", "ghost"]}]}, ["multiway set 's'", "['ghost']", "not experts"]),
        ({"sets": [{"name": "s", "checkpoints": ["fr", "fr"]}]}, ["multiway set 's'", "lists an expert twice"]),
        ({"sets": [{"name": "s", "checkpoints": ["fr", "arc"], "max_size": 3}]}, ["max_size 3 is more than its 2"]),
        ({"sets": [{"name": "s", "checkpoints": ["fr", "arc"], "tasks": ["n2w_xx"]}]}, ["tasks ['n2w_xx']"]),
        (
            {"sets": [{"name": "s", "checkpoints": ["fr", "arc"]}, {"name": "s", "checkpoints": ["fr", "words"]}]},
            ["the name 's' is used twice"],
        ),
        ({"all_at_once": ["ties_d99"]}, ["multiway.all_at_once: 'ties_d99' is not an operator"]),
        ({"all_at_once": ["slerp_t30"]}, ["'slerp_t30' is order-sensitive", "only symmetric"]),
        ({"oracle_operators": ["nope"]}, ["multiway.oracle_operators: 'nope'"]),
        ({"sets": [{"name": "s", "checkpoints": ["fr", "arc", "words", "fr", "arc", "words"]}]}, ["multiway.sets.0"]),
    ],
)
def test_bad_multiway_config_names_the_set_and_field(smoke, change, expected):
    smoke["multiway"] = {**smoke["multiway"], **change}
    expect_config_error(smoke, *expected)


def test_bad_bandit_arrival_names_the_entry(smoke):
    smoke["bandit"]["arrivals"].append({"at": 0.7, "operators": ["ghost_op"], "checkpoints": ["nobody"]})
    expect_config_error(
        smoke, "bandit.arrivals[1].checkpoints: ['nobody']", "bandit.arrivals[1].operators: ['ghost_op']"
    )


def test_catalog_views_follow_the_config_order(smoke):
    catalog = load(smoke, workdir=REPO)
    assert catalog.names == ["tiny", "fr", "arc", "words"] and catalog.expert_names == ["fr", "arc", "words"]
    assert catalog.ordered_pairs == [
        ("fr", "arc"),
        ("fr", "words"),
        ("arc", "fr"),
        ("arc", "words"),
        ("words", "fr"),
        ("words", "arc"),
    ]
    assert list(catalog.operators) == ["linear", "ties_d50", "slerp_t30"]
    with pytest.raises(KeyError, match="no checkpoint named 'ghost' in the catalog; known: tiny, fr, arc, words"):
        catalog.get("ghost")


def test_a_merge_is_scored_on_its_parents_home_tasks_in_task_order_or_on_all(smoke):
    assert load(smoke, workdir=REPO).merge_tasks("words", "fr") == ["n2w_fr", "word_lengths"]
    smoke["merges"]["tasks"] = "all"
    assert load(smoke, workdir=REPO).merge_tasks("words", "fr") == ["n2w_fr", "arc_easy", "word_lengths"]


def test_repeated_merges_count_their_seeds_up_from_the_merge_seed(smoke):
    smoke["merges"].update(seed=None, repeats=3)
    assert load(smoke, workdir=REPO).merge_seeds == [7, 8, 9]  # the run seed
    smoke["merges"]["seed"] = 40
    assert load(smoke, workdir=REPO).merge_seeds == [40, 41, 42]


def test_repeat_pairs_gives_every_seed_to_that_many_pairs_and_keeps_them_when_an_expert_is_added():
    default = read_config("config.yaml")
    default["merges"].update(repeats=3, repeat_pairs=None)
    every = load(copy.deepcopy(default), workdir=REPO)
    names = every.expert_names
    assert len(every.repeat_pairs) == len(names) * (len(names) - 1) // 2
    default["merges"]["repeat_pairs"] = 3
    catalog = load(copy.deepcopy(default), workdir=REPO)
    chosen = catalog.repeat_pairs
    assert len(chosen) == 3 and set(chosen) < set(every.repeat_pairs)
    for a, b in every.repeat_pairs:
        expected = [catalog.merge_seed + offset for offset in range(3)] if (a, b) in chosen else [catalog.merge_seed]
        assert catalog.merge_seeds_of(a, b) == catalog.merge_seeds_of(b, a) == expected
    # another expert: its pairs compete for the places by their own hash; the pairs kept are among those before
    default["catalog"]["experts"].append({**default["catalog"]["experts"][0], "name": "fr_cold"})
    grown = load(copy.deepcopy(default), workdir=REPO).repeat_pairs
    assert len(grown) == 3 and {pair for pair in grown if "fr_cold" not in pair} <= set(chosen)
    default["merges"]["seed"] = catalog.merge_seed + 1  # another merge seed draws other pairs
    assert load(default, workdir=REPO).repeat_pairs != grown


def test_near_duplicates_form_hold_out_groups():
    default = load(read_config(REPO / "config" / "config.yaml"))
    # fr and fr_hot share their home task n2w_fr
    assert default.holdout_groups == {
        "fr": "fr+fr_hot",
        "fr_hot": "fr+fr_hot",
        "de": "de",
        "rhyme": "rhyme",
        "emoji": "emoji",
    }
    config = read_config(REPO / "config" / "config.yaml")
    config["predictor"] = {"group_same_home_tasks": False, "hold_out_together": [["de", "emoji"], ["emoji", "rhyme"]]}
    groups = load(config).holdout_groups
    # groups chain through shared members; names follow the catalog order
    assert groups == {
        "fr": "fr",
        "fr_hot": "fr_hot",
        "de": "de+rhyme+emoji",
        "rhyme": "de+rhyme+emoji",
        "emoji": "de+rhyme+emoji",
    }


def test_an_unknown_expert_in_a_hold_out_group_is_named(smoke):
    smoke["predictor"] = {"hold_out_together": [["fr", "fr_hot"]]}
    expect_config_error(smoke, "predictor.hold_out_together[0]: ['fr_hot'] are not experts of the catalog")


def test_check_runs_the_schema_and_the_task_yamls_after_load(smoke, tmp_path):
    checked = check(smoke, workdir=REPO, where="smoke.yaml", task_dir=REPO / "config" / "tasks")
    assert set(checked.task_files) == set(checked.catalog.tasks)
    # a built-in skill's YAML and templates, the user task's folder; lm-eval's own registry task has none
    files = {task: [str(file) for file in found] for task, found in checked.task_files.items()}
    assert str(REPO / "config" / "tasks" / "simmerge_n2w_fr.yaml") in files["n2w_fr"]
    assert files["word_lengths"] == [
        "config/smoke_data/word_lengths/utils.py",
        "config/smoke_data/word_lengths/word_lengths.yaml",
    ]
    assert files["arc_easy"] == []
    # pydantic's lax mode reads "10" as 10; the committed schema (the contract) does not
    lax = copy.deepcopy(smoke)
    lax["catalog"]["experts"][0]["source"]["train"]["steps"] = "10"
    load(lax, workdir=REPO)
    with pytest.raises(ConfigError, match=r"(?s)in smoke.yaml \(JSON schema\):.*catalog.experts.0.source"):
        check(lax, workdir=REPO, where="smoke.yaml", task_dir=REPO / "config" / "tasks")
    unknown = copy.deepcopy(smoke)
    unknown["tasks"]["xyz"] = {"n_train": 10, "n_eval": 2, "n_probe": 2}
    with pytest.raises(ConfigError, match=r"declares 'task: simmerge_xyz'.*\(in smoke.yaml, tasks\)$"):
        check(unknown, workdir=REPO, where="smoke.yaml", task_dir=REPO / "config" / "tasks")
    with pytest.raises(ConfigError, match=r"task folder not found: .*nowhere \(in smoke.yaml, tasks\)"):
        check(smoke, workdir=REPO, where="smoke.yaml", task_dir=tmp_path / "nowhere")
