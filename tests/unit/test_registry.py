"""Tests of simmerge.features.registry: registration by decorator, validation at decoration and at compute time."""

from __future__ import annotations

import pytest

from simmerge.features.definitions import feature, feature_names
from simmerge.features.registry import FeatureRegistry


def test_registering_a_name_twice_raises_and_registers_nothing():
    before = feature_names()
    with pytest.raises(ValueError, match="'kl_ab_mean' is already registered"):
        feature("kl_ab_mean", kind="functional", doc="again")(lambda pair: 0.0)
    assert feature_names() == before

    registry = FeatureRegistry()
    registry.feature("x", kind="drift", doc="One.")(lambda pair: 1.0)
    with pytest.raises(ValueError, match="'x' is already registered"):
        registry.feature("x", kind="drift", doc="One again.")(lambda pair: 1.0)
    with pytest.raises(ValueError, match="'x' is already registered"):
        registry.feature_group({"y": "Y.", "x": "X."}, kind="functional")(lambda pair: {"x": 0.0, "y": 0.0})
    assert registry.names() == ["x"]


def test_registry_validates_at_decoration_and_at_compute():
    registry = FeatureRegistry()
    with pytest.raises(ValueError, match="kind must be one of functional, drift, structural"):
        registry.feature("x", kind="weights", doc="X.")
    with pytest.raises(ValueError, match="lower snake_case"):
        registry.feature("Bad-Name", kind="drift", doc="X.")
    with pytest.raises(ValueError, match="lower snake_case and not one of a, b, task"):
        registry.feature("task", kind="drift", doc="X.")
    with pytest.raises(ValueError, match="needs a definition"):
        registry.feature("x", kind="drift", doc=" ")
    with pytest.raises(TypeError, match="exactly one required argument"):
        registry.feature("x", kind="drift", doc="X.")(lambda pair, other: 0.0)
    registry.feature_group({"s1": "One.", "s2": "Two."}, kind="structural")(lambda pair: {"s1": 1.0})
    registry.feature("f", kind="functional", doc="F.")(lambda pair: 2)
    assert registry.names() == ["f", "s1", "s2"]  # functional before structural, whatever the order of registration
    with pytest.raises(ValueError, match=r"returned \['s1'\] but registered \['s1', 's2'\]"):
        registry.compute(None)
