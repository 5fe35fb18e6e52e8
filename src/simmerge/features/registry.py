"""The feature registry: named pure functions of a pair's summaries, registered by decorator.

A :class:`FeatureRegistry` maps each registered name to its :class:`Feature`; the names are the columns of the
pair-features table. The features themselves are registered in :mod:`simmerge.features.definitions`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

FeatureKind = Literal["functional", "drift", "structural"]


KINDS: tuple[FeatureKind, ...] = ("functional", "drift", "structural")
"""Feature kinds, in the order their columns appear."""

ID_COLUMNS = ("a", "b", "task")
"""Leading columns of a pair-features table, before the features (no feature may take these names)."""


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Feature:
    """One registered feature: a parquet column of the pair-features table.

    Attributes
    ----------
    name : str
        Column name (snake_case).
    kind : {"functional", "drift", "structural"}
        Probe-based similarity of a and b, drift of each from the base, or weight-based.
    definition : str
        One or two sentences saying exactly what the value is (rendered in ``docs/features.md``).
    group : str
        Qualified name of the function that computes it (several features may share one).
    """

    name: str
    kind: FeatureKind
    definition: str
    group: str


@dataclass(frozen=True)
class _Group:
    """A registered function and the names it returns (one name: it returns a float)."""

    function: Callable[[Any], Any]
    names: tuple[str, ...]
    single: bool


class FeatureRegistry:
    """Registered features, in the order of :data:`KINDS`, then registration order.

    A name is registered once: registering it again raises, whatever the function. Looking up an unknown name
    raises a ``KeyError`` that lists the known ones.

    Examples
    --------
    >>> registry = FeatureRegistry()
    >>> @registry.feature("answer", kind="functional", doc="Always 42.")
    ... def answer(pair):
    ...     return 42.0
    >>> registry.names()
    ['answer']
    """

    def __init__(self) -> None:
        self._features: dict[str, Feature] = {}
        self._groups: list[_Group] = []

    # -- registration ------------------------------------------------------------------------------------

    def feature(self, name: str, *, kind: FeatureKind, doc: str) -> Callable[[Callable], Callable]:
        """Decorator registering a function ``f(pair: PairTask) -> float`` as the feature ``name``.

        Parameters
        ----------
        name : str
            Column name: lower snake_case, not ``a``, ``b`` or ``task``, not yet registered.
        kind : {"functional", "drift", "structural"}
        doc : str
            The feature's definition.

        Raises
        ------
        ValueError
            If the name is invalid or taken, the kind unknown, or the definition empty.
        TypeError
            If the function does not take exactly one required argument (the :class:`PairTask`).
        """
        return self._decorator({name: doc}, kind=kind, single=True)

    def feature_group(self, docs: Mapping[str, str], *, kind: FeatureKind) -> Callable[[Callable], Callable]:
        """Decorator registering ``f(pair: PairTask) -> Mapping[str, float]`` as several features.

        The function is called once per (pair, task) and must return exactly the names of ``docs``.

        Parameters
        ----------
        docs : mapping of str to str
            Feature name → definition, in column order.
        kind : {"functional", "drift", "structural"}

        Raises
        ------
        ValueError, TypeError
            As :meth:`feature`, for any of the names.
        """
        return self._decorator(dict(docs), kind=kind, single=False)

    def _decorator(self, docs: dict[str, str], *, kind: FeatureKind, single: bool) -> Callable[[Callable], Callable]:
        if kind not in KINDS:
            raise ValueError(f"feature kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if not docs:
            raise ValueError("a feature group needs at least one name")
        for name, definition in docs.items():
            if not isinstance(name, str) or not _NAME_RE.match(name) or name in ID_COLUMNS:
                raise ValueError(
                    f"feature name {name!r} must be lower snake_case and not one of {', '.join(ID_COLUMNS)}"
                )
            if name in self._features:
                raise ValueError(f"feature {name!r} is already registered (by {self._features[name].group})")
            if not definition or not definition.strip():
                raise ValueError(f"feature {name!r} needs a definition (doc=...)")

        def register(function: Callable) -> Callable:
            _check_signature(function)
            group = f"{function.__module__}.{function.__qualname__}"
            # Check every name again at decoration time and only then insert, so a failure registers nothing.
            taken = [name for name in docs if name in self._features]
            if taken:
                raise ValueError(f"feature {taken[0]!r} is already registered (by {self._features[taken[0]].group})")
            for name, definition in docs.items():
                self._features[name] = Feature(name, kind, " ".join(definition.split()), group)
            self._groups.append(_Group(function, tuple(docs), single))
            return function

        return register

    # -- lookup ------------------------------------------------------------------------------------------

    def get(self, name: str) -> Feature:
        """The feature called ``name``.

        Raises
        ------
        KeyError
            If no such feature is registered; the message lists the registered names.
        """
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(f"unknown feature {name!r}; known features: {', '.join(self.names())}") from None

    def names(self, kind: FeatureKind | None = None) -> list[str]:
        """Registered names (all, or of one kind), in column order: by kind as in :data:`KINDS`, then
        registration order."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"feature kind must be one of {', '.join(KINDS)}; got {kind!r}")
        kinds = KINDS if kind is None else (kind,)
        return [f.name for k in kinds for f in self._features.values() if f.kind == k]

    def table(self) -> list[dict[str, str]]:
        """``[{"name", "kind", "definition"}]`` in column order."""
        return [
            {"name": f.name, "kind": f.kind, "definition": f.definition}
            for f in (self._features[n] for n in self.names())
        ]

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return (self._features[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._features)

    # -- evaluation --------------------------------------------------------------------------------------

    def compute(self, pair: Any) -> dict[str, float]:
        """Every registered feature of one (pair, task), as float64-valued Python floats in column order.

        Raises
        ------
        ValueError
            If a group function returns other names than it registered.
        """
        values: dict[str, float] = {}
        for group in self._groups:
            result = group.function(pair)
            if group.single:
                result = {group.names[0]: result}
            if set(result) != set(group.names):
                raise ValueError(
                    f"{group.function.__qualname__} returned {sorted(result)} but registered {sorted(group.names)}"
                )
            values.update({name: float(np.float64(result[name])) for name in group.names})
        return {name: values[name] for name in self.names()}


def _check_signature(function: Callable) -> None:
    """Fail at decoration time, as mergekit does, when a feature function cannot take the pair."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(f"feature function {function!r} has no inspectable signature") from None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(positional) < 1 or len(required) != 1 or required[0] is not positional[0]:
        raise TypeError(
            f"feature function {function.__qualname__} must take exactly one required argument, "
            "the PairTask (e.g. `def f(pair: PairTask) -> float`)"
        )
