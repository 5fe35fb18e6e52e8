"""Operators: validation against mergekit's registry, derived order/seed/base flags, and the YAML they produce."""

from __future__ import annotations

import pytest
from mergekit.config import MergeConfiguration

from simmerge.core.config import DEFAULT_OPERATORS, ConfigError
from simmerge.merges.operators import (
    Operator,
    canonical_pair,
    default_operators,
    documented_operators,
    load_operators,
    merge_jobs,
    mergekit_methods,
    multi_model_config,
    parameter_range,
)


@pytest.fixture
def dirs(tmp_path):
    """Absolute paths of a, b and the base; to_mergekit_config does not need them to exist."""
    return {name: str(tmp_path / name) for name in ("a", "b", "base")}


def refused(entries: list[dict]) -> str:
    with pytest.raises(ConfigError) as info:
        load_operators(entries)
    return str(info.value)


# --------------------------------------------------------------------------------------------------------------
# The default list


def test_default_operators_cover_the_methods_and_variants():
    operators = default_operators()
    assert len(operators) >= 10
    assert list(operators) == [entry["name"] for entry in DEFAULT_OPERATORS]
    methods = {op.method for op in operators.values()}
    expected = {"linear", "slerp", "nuslerp", "task_arithmetic", "ties", "dare_ties", "dare_linear", "della"}
    assert expected | {"breadcrumbs"} <= methods
    # parameter variants are operators of their own
    assert sum(op.method == "task_arithmetic" for op in operators.values()) >= 2
    assert sum(op.method == "ties" for op in operators.values()) >= 2
    for op in operators.values():
        assert op.description, op.name
        assert op.reference_url, op.name
        assert "." not in op.name


def test_default_operators_derive_order_seed_and_base():
    ops = default_operators()
    flags = {name: (op.order_sensitive, op.randomised, op.base_role) for name, op in ops.items()}
    assert flags["linear"] == (False, False, "none")
    assert flags["slerp_t30"] == (True, False, "anchor")
    assert flags["nuslerp_w70"] == (True, False, "catalog")  # asymmetric weights make it order-sensitive
    assert flags["ta_w100"] == (False, False, "catalog")
    assert flags["ties_d20"] == (False, False, "catalog")
    assert flags["breadcrumbs_d90"] == (False, False, "catalog")  # sorts by magnitude: deterministic
    for name in ("dare_ties_d50", "dare_linear_d50", "della_d50"):
        assert flags[name] == (False, True, "catalog")


@pytest.mark.parametrize("name", [entry["name"] for entry in DEFAULT_OPERATORS])
def test_every_default_config_validates_with_mergekit(name, dirs):
    op = default_operators()[name]
    config = op.to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=0)
    parsed = MergeConfiguration.model_validate(config)
    assert parsed.merge_method == op.method
    assert config["dtype"] == "float32"
    paths = [entry["model"] for entry in config["models"]]
    assert sorted(paths) == [dirs["a"], dirs["b"]]
    if op.base_role == "catalog":
        assert config["base_model"] == dirs["base"]
    elif op.base_role == "anchor":
        assert config["base_model"] == dirs["a"]
    else:
        assert "base_model" not in config


def test_registry_is_read_from_mergekit():
    methods = mergekit_methods()
    assert {"linear", "slerp", "ties", "dare_ties", "della", "model_stock"} <= set(methods)
    ties = methods["ties"]
    assert ties.names(per_model=True) == ["density", "weight"]
    assert {"lambda", "normalize", "rescale", "int8_mask"} <= set(ties.names(per_model=False))
    assert methods["slerp"].anchored and not methods["nuslerp"].anchored


# --------------------------------------------------------------------------------------------------------------
# Validation errors: each names the entry, the field and the fix


def test_unknown_method_lists_the_known_ones():
    message = refused([{"name": "soup", "method": "frobnicate"}])
    assert "operators[0] 'soup'" in message
    assert "'frobnicate' is not a mergekit merge method" in message
    for known in ("linear", "ties", "dare_ties", "slerp"):
        assert known in message


def test_method_that_cannot_merge_a_pair_is_refused():
    message = refused([{"name": "pass", "method": "passthrough"}])
    assert "operators[0] 'pass'" in message
    assert "cannot merge a pair of models" in message
    assert "exactly 1 inputs; got 2" in message  # mergekit's own contract message


def test_model_stock_takes_a_pair_with_the_base():
    # mergekit's contract asks for >= 3 inputs *counting the base*: a, b and the catalog base are three, and the
    # Model Stock paper itself merges two fine-tuned models with their pretrained base.
    op = load_operators([{"name": "stock", "method": "model_stock"}])["stock"]
    assert op.uses_base and not op.order_sensitive
    message = refused([{"name": "stock", "method": "model_stock", "uses_base": False}])
    assert "requires a base model" in message


def test_unknown_parameter_is_named_with_the_allowed_ones():
    message = refused([{"name": "t1", "method": "ties", "model_parameters": {"weight": 1.0, "dencity": 0.5}}])
    assert "operators[0] 't1'" in message
    assert "model_parameters.dencity" in message
    assert "allowed: density, weight" in message


def test_global_parameter_in_a_model_block_is_refused():
    message = refused([{"name": "t1", "method": "ties", "model_parameters": {"weight": 1.0, "normalize": False}}])
    assert "model_parameters.normalize" in message
    assert "move it to `parameters`" in message


def test_missing_required_parameter_is_refused():
    message = refused([{"name": "t1", "method": "ties", "model_parameters": {"density": 0.5}}])
    assert "model_parameters.weight" in message and "requires 'weight'" in message
    message = refused([{"name": "s", "method": "slerp"}])
    assert "parameters.t" in message


def test_per_model_parameter_may_be_global():
    op = load_operators([{"name": "lin", "method": "linear", "parameters": {"weight": 0.5}}])["lin"]
    assert not op.order_sensitive


def test_bad_value_type_is_refused():
    message = refused([{"name": "t1", "method": "ties", "model_parameters": {"weight": 1.0, "density": "lots"}}])
    assert "model_parameters.density" in message and "'lots'" in message


def test_della_epsilon_must_keep_density_inside_the_unit_interval():
    entry = {"name": "d", "method": "della", "model_parameters": {"weight": 1.0, "density": 0.5, "epsilon": 0.5}}
    assert "density ± epsilon inside (0, 1)" in refused([entry])


def test_duplicate_names_are_refused():
    entry = {"name": "lin", "method": "linear", "model_parameters": {"weight": 0.5}}
    message = refused([entry, {"name": "x", "method": "linear", "model_parameters": {"weight": 1.0}}, entry])
    assert "operators[2] 'lin': name is used twice (also operators[0])" in message


def test_every_problem_is_listed_at_once():
    message = refused([{"name": "a", "method": "nope"}, {"name": "b", "method": "passthrough"}])
    assert "operators[0] 'a'" in message and "operators[1] 'b'" in message


def test_contradicting_derived_flags_are_refused():
    assert "order_sensitive: false contradicts" in refused(
        [{"name": "s", "method": "slerp", "parameters": {"t": 0.3}, "order_sensitive": False}]
    )
    assert "randomised: false contradicts" in refused(
        [{"name": "d", "method": "dare_ties", "model_parameters": {"weight": 1.0}, "randomised": False}]
    )
    assert "takes no base model" in refused(
        [{"name": "l", "method": "linear", "model_parameters": {"weight": 0.5}, "uses_base": True}]
    )


def test_names_with_dots_or_pair_separator_are_refused():
    assert "no '.'" in refused([{"name": "ta_w0.75", "method": "linear", "model_parameters": {"weight": 0.5}}])
    assert "no '.'" in refused([{"name": "ta__w", "method": "linear", "model_parameters": {"weight": 0.5}}])


def test_extra_fields_are_refused():
    message = refused([{"name": "l", "method": "linear", "model_parameters": {"weight": 0.5}, "wieght": 1}])
    assert "wieght" in message


def test_operator_round_trips_through_model_dump():
    op = default_operators()["nuslerp_w70"]
    assert load_operators([op.model_dump()])["nuslerp_w70"] == op
    assert load_operators([op])["nuslerp_w70"] == op


def test_operator_schema_builds_without_validation():
    schema = Operator.model_json_schema()
    assert {"name", "method", "parameters", "model_parameters"} <= set(schema["properties"])


# --------------------------------------------------------------------------------------------------------------
# Order


def test_symmetric_operator_gives_the_same_config_for_both_orders(dirs):
    ops = default_operators()
    for name in ("linear", "ta_w100", "ties_d20", "dare_ties_d50"):
        ab = ops[name].to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=0)
        ba = ops[name].to_mergekit_config(dirs["b"], dirs["a"], dirs["base"], seed=0)
        assert ab == ba, name


def test_slerp_anchor_is_the_first_model(dirs):
    slerp = default_operators()["slerp_t30"]
    ab = slerp.to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=None)
    ba = slerp.to_mergekit_config(dirs["b"], dirs["a"], dirs["base"], seed=None)
    assert ab["base_model"] == dirs["a"] and ba["base_model"] == dirs["b"]
    assert ab["parameters"] == {"t": 0.3}
    assert [m["model"] for m in ab["models"]] == [dirs["a"], dirs["b"]]


def test_anchor_and_other_parameters_follow_the_order(dirs):
    nuslerp = default_operators()["nuslerp_w70"]
    ab = nuslerp.to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=None)
    ba = nuslerp.to_mergekit_config(dirs["b"], dirs["a"], dirs["base"], seed=None)
    weights = {m["model"]: m["parameters"]["weight"] for m in ab["models"]}
    assert weights == {dirs["a"]: 0.7, dirs["b"]: 0.3}
    weights = {m["model"]: m["parameters"]["weight"] for m in ba["models"]}
    assert weights == {dirs["b"]: 0.7, dirs["a"]: 0.3}


def test_filtered_and_gradient_values_reach_the_yaml(dirs):
    op = load_operators(
        [
            {
                "name": "ta_mix",
                "method": "task_arithmetic",
                "parameters": {"lambda": [0.5, 1.0]},
                "model_parameters": {"weight": [{"filter": "mlp", "value": 1.0}, {"value": 0.5}]},
            }
        ]
    )["ta_mix"]
    config = op.to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=None)
    assert config["parameters"] == {"lambda": [0.5, 1.0]}
    assert config["models"][0]["parameters"]["weight"] == [{"filter": "mlp", "value": 1.0}, {"value": 0.5}]
    MergeConfiguration.model_validate(config)


def test_canonical_pair_and_merge_jobs():
    assert canonical_pair("n2w_fr", "capital_mc") == ("capital_mc", "n2w_fr")
    assert canonical_pair("capital_mc", "n2w_fr") == ("capital_mc", "n2w_fr")
    with pytest.raises(ValueError, match="twice"):
        canonical_pair("x", "x")
    ops = default_operators()
    experts = ["x", "y", "z"]
    ordered = [(a, b) for a in experts for b in experts if a != b]
    jobs = merge_jobs({name: ops[name] for name in ("linear", "slerp_t30")}, ordered)
    assert sum(op == "linear" for op, _, _ in jobs) == 3
    assert sum(op == "slerp_t30" for op, _, _ in jobs) == 6
    assert ops["linear"].pair_to_merge("z", "x") == ("x", "z")
    assert ops["slerp_t30"].pair_to_merge("z", "x") == ("z", "x")


# --------------------------------------------------------------------------------------------------------------
# Path and seed checks


def test_randomised_operator_needs_a_seed(dirs):
    with pytest.raises(ValueError, match="needs a seed"):
        default_operators()["dare_ties_d50"].to_mergekit_config(dirs["a"], dirs["b"], dirs["base"], seed=None)


def test_bad_paths_are_refused(dirs, tmp_path):
    linear, ta = default_operators()["linear"], default_operators()["ta_w100"]
    with pytest.raises(ValueError, match="revision or LoRA"):
        linear.to_mergekit_config(str(tmp_path / "a@main"), dirs["b"], dirs["base"], seed=0)
    with pytest.raises(ValueError, match="same model twice"):
        linear.to_mergekit_config(dirs["a"], dirs["a"], dirs["base"], seed=0)
    with pytest.raises(ValueError, match="also one of the merged models"):
        ta.to_mergekit_config(dirs["a"], dirs["base"], dirs["base"], seed=0)
    with pytest.raises(ValueError, match="needs base_dir"):
        ta.to_mergekit_config(dirs["a"], dirs["b"], None, seed=0)
    # linear does not use the base, so it may be omitted
    assert "base_model" not in linear.to_mergekit_config(dirs["a"], dirs["b"], None, seed=0)


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = default_operators()["ta_w100"].to_mergekit_config("a", "b", "base", seed=0)
    assert config["base_model"] == str(tmp_path / "base")
    assert {m["model"] for m in config["models"]} == {str(tmp_path / "a"), str(tmp_path / "b")}


# --------------------------------------------------------------------------------------------------------------
# Older mergekit releases


def test_legacy_registry_is_read_with_the_documented_tables():
    from types import SimpleNamespace

    from simmerge.merges.operators import _from_legacy

    def defs(*names):
        return [SimpleNamespace(name=n, required=n == "weight", default_value=None) for n in names]

    ties = SimpleNamespace(
        parameters=lambda: defs("normalize", "lambda"),
        tensor_parameters=lambda: defs("weight", "density"),
        sparsification_method=SimpleNamespace(value="magnitude"),
    )
    info = _from_legacy("ties", ties)
    assert info.base == "required" and not info.anchored and not info.randomised
    assert info.names(per_model=True) == ["density", "weight"]
    info.check_inputs(["a", "b", "base"], "base")
    passthrough = SimpleNamespace(parameters=lambda: [], tensor_parameters=lambda: defs("scale"))
    with pytest.raises(ValueError, match="exactly 1"):
        _from_legacy("passthrough", passthrough).check_inputs(["a", "b"], None)
    slerp = SimpleNamespace(parameters=lambda: defs("t"), tensor_parameters=lambda: [])
    assert _from_legacy("slerp", slerp).anchored


def test_all_at_once_config_lists_every_model_with_the_operator_parameters(tmp_path):
    models = [str(tmp_path / name) for name in ("c", "a", "b")]
    config = default_operators()["ties_d50"].to_mergekit_config_all(models, str(tmp_path / "base"), seed=None)
    assert [entry["model"] for entry in config["models"]] == sorted(models)
    assert all(entry["parameters"] == {"weight": 1.0, "density": 0.5} for entry in config["models"])
    assert config["base_model"] == str(tmp_path / "base")
    MergeConfiguration.model_validate(config)
    linear = default_operators()["linear"].to_mergekit_config_all(models, str(tmp_path / "base"), seed=None)
    assert "base_model" not in linear  # linear ignores a base
    with pytest.raises(ValueError, match="order-sensitive"):
        default_operators()["slerp_t30"].to_mergekit_config_all(models, str(tmp_path / "base"), seed=None)
    with pytest.raises(ValueError, match="needs a seed"):
        default_operators()["dare_ties_d50"].to_mergekit_config_all(models, str(tmp_path / "base"), seed=None)


def test_multi_model_config_follows_mergekits_input_contract(tmp_path):
    models = [str(tmp_path / name) for name in ("a", "b", "c")]
    stock = multi_model_config("model_stock", models, str(tmp_path / "base"))
    assert stock["merge_method"] == "model_stock" and len(stock["models"]) == 3
    with pytest.raises(ValueError, match="model_stock cannot merge 1 models: mergekit says .*at least 3"):
        multi_model_config("model_stock", models[:1], str(tmp_path / "base"))
    with pytest.raises(ValueError, match="requires a base model"):
        multi_model_config("ties", models, None)
    with pytest.raises(ValueError, match="given twice"):
        multi_model_config("linear", [models[0], models[0]], None)


# --------------------------------------------------------------------------------------------------------------
# Parameter ranges


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"name": "t1", "method": "ties", "model_parameters": {"weight": 1.0, "density": 7.5}},
            "operators[0] 't1': model_parameters.density: 7.5 is outside (0, 1], the range of 'density' for ties",
        ),
        (
            {"name": "t0", "method": "ties", "model_parameters": {"weight": 1.0, "density": 0.0}},
            "model_parameters.density: 0.0 is outside (0, 1]",
        ),
        (
            {"name": "s", "method": "slerp", "parameters": {"t": [0.0, 0.5, 1.2]}},
            "operators[0] 's': parameters.t: 1.2 is outside [0, 1], the range of 't' for slerp",
        ),
        (
            {
                "name": "ta",
                "method": "task_arithmetic",
                "parameters": {"lambda": -1},
                "model_parameters": {"weight": 1},
            },
            "parameters.lambda: -1 is outside (0, ∞), the range of 'lambda' for task_arithmetic",
        ),
        (
            {"name": "w", "method": "linear", "model_parameters": {"weight": float("inf")}},
            "model_parameters.weight: inf is outside (-∞, ∞)",
        ),
        (
            {
                "name": "b",
                "method": "breadcrumbs",
                "model_parameters": {"weight": 1.0, "density": 0.9, "gamma": 1.0},
            },
            "model_parameters.gamma: 1.0 is outside [0, 1), the range of 'gamma' for breadcrumbs",
        ),
        (
            {"name": "d", "method": "della", "anchor_parameters": {"epsilon": -0.1}, "model_parameters": {"weight": 1}},
            "anchor_parameters.epsilon: -0.1 is outside [0, 1)",
        ),
    ],
)
def test_a_parameter_outside_its_range_is_refused_naming_operator_parameter_value_and_range(entry, expected):
    assert expected in refused([entry])


def test_every_numeric_parameter_of_every_mergekit_method_has_a_range():
    flags = {"int8_mask", "normalize", "rescale", "nuslerp_row_wise", "nuslerp_flatten", "filter_wise"}
    flags |= {"normalize_weights"}
    missing = [
        f"{name}.{parameter}"
        for name, info in mergekit_methods().items()
        for parameter in info.parameters
        if parameter not in flags and parameter_range(name, parameter) is None
    ]
    assert missing == []
    assert 1.0 in parameter_range("ties", "density") and 0.0 not in parameter_range("ties", "density")
    assert str(parameter_range("ram", "epsilon")) == "(0, ∞)"  # ram's epsilon is a threshold, not della's spread


def test_every_method_of_mergekits_registry_that_merges_a_pair_has_a_documented_operator():
    documented = load_operators(list(documented_operators()))
    pair_methods = {name for name in mergekit_methods() if name != "passthrough"}  # passthrough: one input
    assert pair_methods <= {op.method for op in documented.values()}
    assert list(documented)[: len(DEFAULT_OPERATORS)] == [entry["name"] for entry in DEFAULT_OPERATORS]
    for op in documented.values():
        assert op.description, op.name
    flags = {name: (op.order_sensitive, op.randomised, op.base_role) for name, op in documented.items()}
    assert flags["karcher"] == (False, False, "none")
    assert flags["nearswap_t0001"] == (True, False, "anchor")
    assert flags["arcee_fusion"] == (True, True, "anchor")
    assert flags["mixup_a05"] == (False, True, "none")


def test_a_config_names_documented_operators_beside_its_own():
    operators = load_operators(
        ["linear", "sce_k10", {"name": "ta_w050", "method": "task_arithmetic", "model_parameters": {"weight": 0.5}}]
    )
    assert list(operators) == ["linear", "sce_k10", "ta_w050"]
    assert operators["sce_k10"].parameters == {"select_topk": 0.1}
    with pytest.raises(ConfigError, match=r"operators\[1\]: 'sce' is not a documented operator; documented: linear,"):
        load_operators(["linear", "sce"])


def test_mixup_is_a_seeded_linear_merge_and_refuses_what_contradicts_it(dirs):
    mixup = load_operators(["mixup_a05"])["mixup_a05"]
    config = mixup.to_mergekit_config(dirs["a"], dirs["b"], None, seed=7)
    weights = [model["parameters"]["weight"] for model in config["models"]]
    assert weights == [mixup.mixup_weight(7), 1 - mixup.mixup_weight(7)]
    assert mixup.to_mergekit_config(dirs["b"], dirs["a"], None, seed=7) == config  # symmetric: one merge per pair
    with pytest.raises(ValueError, match="needs a seed"):
        mixup.to_mergekit_config(dirs["a"], dirs["b"], None, seed=None)
    with pytest.raises(ValueError, match="merges a pair, not a set"):
        mixup.to_mergekit_config_all([dirs["a"], dirs["b"]], None, seed=0)
    for entry, message in (
        ({"name": "m", "method": "ties", "mixup_alpha": 0.5}, "method must be linear, not ties"),
        (
            {"name": "m", "method": "linear", "mixup_alpha": 0.5, "model_parameters": {"weight": 0.5}},
            "model_parameters.weight: with mixup_alpha the weights are drawn per merge",
        ),
        ({"name": "m", "method": "linear", "mixup_alpha": 0.0}, "greater than 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_operators([entry])
