"""Merge operators: a named mergekit method with its parameters, checked against mergekit's own registry.

An operator is one configured instance of a mergekit merge method (``ties`` at density 0.2 and ``ties`` at
density 0.5 are two operators), as mergekit itself builds task_arithmetic, ties and dare_ties from one class.
Each config entry becomes a frozen :class:`Operator`; :func:`load_operators` validates a whole list at once and
every error names the entry, the field and the fix. :meth:`Operator.to_mergekit_config` turns an ordered pair
of checkpoint directories into the exact mergekit YAML mapping that :func:`simmerge.merges.merging.merge_pair` runs.

What is checked against the installed mergekit, not against a hard-coded list:

- the method is registered (``mergekit.merge_methods.registered_methods()``; mergekit releases before the
  2026 refactor expose the same table as ``REGISTERED_MERGE_METHODS``, which is read as a fallback);
- mergekit accepts a pair: the method's declared input contract is asked whether it takes the inputs a pair
  merge gives it (see :func:`pair_inputs`), so ``passthrough`` (one input per tensor) is refused;
- every parameter is one the method declares, at the level mergekit reads it from (a global such as
  ``normalize`` is silently ignored by mergekit under ``models[*].parameters``, so it is refused there);
- required parameters are set (mergekit would only fail mid-merge), and scalar values have the declared type;
- every number lies in its parameter's meaningful range (:data:`PARAMETER_RANGES`): mergekit checks types only,
  and treats e.g. ``density: 7.5`` silently as "keep everything";
- della's ``density ± epsilon`` lies inside (0, 1), which mergekit checks only per tensor at merge time.

Order: for an order-sensitive operator the ordered pair (a, b) makes ``a`` the anchor:
slerp-like methods (a base input and exactly two inputs: slerp, nearswap, arcee_fusion) take ``a`` as their
``base_model``, and ``anchor_parameters`` / ``other_parameters`` give ``a`` and ``b`` different per-model
values. Every other operator is symmetric: its YAML lists the two models in a canonical order, so (a, b) and
(b, a) give the same YAML and the same merged weights, and the workflow merges it once per unordered pair
(:func:`canonical_pair`, :meth:`Operator.pair_to_merge`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from simmerge.core.config import (
    AVAILABLE_OPERATORS,
    DEFAULT_OPERATORS,
    SLUG_FIX,
    SLUG_PATTERN,
    ConfigError,
    Frozen,
    Slug,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# Parameter values, in the forms mergekit's YAML accepts (mergekit.config.ParameterSetting).

Scalar = bool | int | float | str


class ConditionalValue(Frozen):
    """A value that applies to tensors whose name contains ``filter`` (mergekit's ``{filter, value}``)."""

    filter: str | None = Field(None, description="Substring of the tensor name ('self_attn', 'mlp'); null: all.")
    value: Scalar | list[Scalar] = Field(description="A scalar, or a list interpolated across layers.")


ParameterValue = Scalar | list[Scalar] | list[ConditionalValue]

# --------------------------------------------------------------------------------------------------------------
# What mergekit declares about each method, read once from the installed version.

BaseUse = Literal["required", "optional", "ignored", "forbidden"]

# Methods whose pruning draws random numbers, so the merge depends on MergeOptions.random_seed. Read from
# mergekit/sparsify.py: `random` (DARE) and `della_magprune` (DELLA) call torch.bernoulli; `magnitude` (TIES)
# and `magnitude_outliers` (breadcrumbs) only sort, so they are deterministic.
_RANDOM_SPARSIFICATION = frozenset({"random", "della_magprune"})
# arcee_fusion estimates its threshold's quantiles from a torch.randint sample of any tensor over 1M entries
# (mergekit/merge_methods/arcee_fusion.py), so it is randomised too on real models.
_RANDOM_METHODS = frozenset({"arcee_fusion"})


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter a mergekit method declares.

    Attributes
    ----------
    name : str
        YAML key (``"density"``).
    per_model : bool
        True when mergekit reads it per input model (``models[*].parameters``, or top-level ``parameters`` as a
        default for every model); False for a global read only from top-level ``parameters``.
    required : bool
        No default: mergekit fails at merge time without it.
    default : Any
        The default when not required.
    non_base_only : bool
        A per-model parameter that the base model does not take (``weight`` of ties).
    validate : callable or None
        Converts and checks one scalar value, raising on a bad type (None when mergekit gives no validator).
    """

    name: str
    per_model: bool
    required: bool
    default: Any = None
    non_base_only: bool = True
    validate: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MethodInfo:
    """What :mod:`simmerge.merges.operators` needs to know about one registered mergekit method.

    Attributes
    ----------
    name, pretty_name, reference_url : str
        mergekit's names and paper link for the method.
    parameters : dict
        Declared parameters by name (:class:`ParameterInfo`).
    base : {"required", "optional", "ignored", "forbidden"}
        Whether the method takes a ``base_model``.
    anchored : bool
        A base and exactly two inputs (slerp, nearswap, arcee_fusion): the base *is* one of the two models
        merged, so in a pair merge the anchor ``a`` is the ``base_model``.
    randomised : bool
        The merge draws random numbers (see ``_RANDOM_SPARSIFICATION``).
    check_inputs : callable
        ``check_inputs(input_ids, base_id)`` raises ``ValueError`` with mergekit's message if the method does not
        take that many inputs.
    """

    name: str
    pretty_name: str | None
    reference_url: str | None
    parameters: dict[str, ParameterInfo]
    base: BaseUse
    anchored: bool
    randomised: bool
    check_inputs: Callable[[Sequence[str], str | None], None] = field(compare=False, repr=False)

    def names(self, *, per_model: bool | None = None) -> list[str]:
        """Declared parameter names, optionally only per-model (True) or only global (False) ones."""
        return sorted(p.name for p in self.parameters.values() if per_model is None or p.per_model == per_model)


def _from_spec(method: Any) -> MethodInfo:
    """Read a method of the current mergekit API (``MergeMethod.spec``: parameters and input contract)."""
    spec = method.spec
    contract = spec.contract
    parameters = {
        p.name: ParameterInfo(
            name=p.name,
            per_model=p.scope.value != "shared",
            required=p.required,
            default=None if p.required else p.default,
            non_base_only=p.scope.value == "non_base",
            validate=p.validate,
        )
        for p in spec.parameters
    }
    sparsification = getattr(method, "sparsification_method", None)
    randomised = spec.name in _RANDOM_METHODS or getattr(sparsification, "value", None) in _RANDOM_SPARSIFICATION
    return MethodInfo(
        name=spec.name,
        pretty_name=spec.pretty_name,
        reference_url=spec.reference_url,
        parameters=parameters,
        base=contract.base.value,
        anchored=contract.base.value == "required" and contract.max_inputs == 2,
        randomised=randomised,
        check_inputs=lambda ids, base, _method=method: _method.validate_inputs(list(ids), base),
    )


# Older mergekit releases (``REGISTERED_MERGE_METHODS``, ``parameters()`` / ``tensor_parameters()``) declared no
# input contract; this table restates what their method code enforced: base use, and the input count bounds
# (min, max, counting the base) for the methods that have them.
_LEGACY_BASE: dict[str, BaseUse] = {
    "linear": "ignored",
    "karcher": "ignored",
    "passthrough": "ignored",
    "nuslerp": "optional",
    "multislerp": "optional",
}
_LEGACY_ANCHORED = frozenset({"slerp", "nearswap", "arcee_fusion"})
_LEGACY_INPUTS: dict[str, tuple[int, int | None]] = {"passthrough": (1, 1), "model_stock": (3, None)}


def _from_legacy(name: str, method: Any) -> MethodInfo:
    """Read a method of the pre-2026 mergekit API, completing it with the tables above."""
    parameters: dict[str, ParameterInfo] = {}
    for per_model, defs in ((False, method.parameters()), (True, method.tensor_parameters())):
        for p in defs:
            parameters[p.name] = ParameterInfo(
                name=p.name, per_model=per_model, required=bool(p.required), default=p.default_value
            )
    base: BaseUse = "required" if name in _LEGACY_ANCHORED else _LEGACY_BASE.get(name, "required")
    low, high = _LEGACY_INPUTS.get(name, (1, 2 if name in _LEGACY_ANCHORED else None))

    def check_inputs(ids: Sequence[str], base_id: str | None) -> None:
        n = len(ids)
        if n < low or (high is not None and n > high):
            bound = f"exactly {low}" if low == high else (f"at most {high}" if high is not None else f"at least {low}")
            raise ValueError(f"Merge method requires {bound} inputs; got {n}")

    sparsification = getattr(method, "sparsification_method", None)
    randomised = name in _RANDOM_METHODS or getattr(sparsification, "value", None) in _RANDOM_SPARSIFICATION
    return MethodInfo(
        name=name,
        pretty_name=method.pretty_name() if hasattr(method, "pretty_name") else None,
        reference_url=method.reference_url() if hasattr(method, "reference_url") else None,
        parameters=parameters,
        base=base,
        anchored=name in _LEGACY_ANCHORED,
        randomised=randomised,
        check_inputs=check_inputs,
    )


@functools.cache
def mergekit_methods() -> dict[str, MethodInfo]:
    """Every merge method the installed mergekit registers, by its YAML name.

    Returns
    -------
    dict
        ``merge_method`` key → :class:`MethodInfo`, sorted by name.

    Raises
    ------
    ImportError
        If mergekit exposes neither ``registered_methods()`` nor ``REGISTERED_MERGE_METHODS``.
    """
    # deferred: rules/common.smk imports this module at parse time, and mergekit is slow to import
    import mergekit.merge_methods as mm

    if hasattr(mm, "registered_methods"):
        infos = [_from_spec(method) for method in mm.registered_methods()]
    elif hasattr(mm, "REGISTERED_MERGE_METHODS"):
        infos = [_from_legacy(name, method) for name, method in mm.REGISTERED_MERGE_METHODS.items()]
    else:  # pragma: no cover - depends on the installed mergekit
        raise ImportError("mergekit.merge_methods has neither registered_methods() nor REGISTERED_MERGE_METHODS")
    return {info.name: info for info in sorted(infos, key=lambda info: info.name)}


def method_info(method: str) -> MethodInfo:
    """The :class:`MethodInfo` of a registered method; ``ValueError`` listing the known ones otherwise."""
    methods = mergekit_methods()
    if method not in methods:
        raise ValueError(
            f"method {method!r} is not a mergekit merge method; known: {', '.join(methods)} "
            "(mergekit.merge_methods registry of the installed mergekit)"
        )
    return methods[method]


def pair_inputs(info: MethodInfo, *, uses_base: bool) -> tuple[list[str], str | None]:
    """The inputs and base a pair merge hands a method, as placeholder ids: ``(["a", "b", "base"], "base")``.

    An anchored method (slerp) gets ``a`` and ``b`` with ``a`` as its base; a method that uses the catalog base
    gets it as a third input; any other method gets the two models alone.
    """
    if info.anchored:
        return ["a", "b"], "a"
    if uses_base:
        return ["a", "b", "base"], "base"
    return ["a", "b"], None


# --------------------------------------------------------------------------------------------------------------
# The operator


class Operator(Frozen):
    """One merge operator: a mergekit method with fixed parameters, applied to an ordered pair (a, b).

    ``order_sensitive``, ``randomised`` and ``uses_base`` may be left out: they are derived from the method and
    the parameters, and a given value that contradicts mergekit is an error. After validation all three are
    booleans, and ``reference_url`` defaults to the method's paper.

    Examples
    --------
    >>> op = Operator(name="ties_d20", method="ties", parameters={"normalize": False},
    ...               model_parameters={"weight": 1.0, "density": 0.2})  # doctest: +SKIP
    >>> op.order_sensitive, op.randomised, op.uses_base  # doctest: +SKIP
    (False, False, True)
    """

    name: Slug = Field(description="Unique operator name; names result files and the {op} wildcard (no '.').")
    method: str = Field(description="mergekit merge_method key (e.g. 'ties'); checked against mergekit's registry.")
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Global mergekit parameters (top-level `parameters`), e.g. {lambda: 0.75}."
    )
    model_parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Per-model parameters given to both models, e.g. {weight: 1.0}."
    )
    anchor_parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Per-model overrides for the anchor a of the ordered pair (a, b)."
    )
    other_parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Per-model overrides for the other model b of the ordered pair (a, b)."
    )
    order_sensitive: bool | None = Field(
        None,
        description="Merge (a, b) and (b, a) separately. Derived: true for anchored methods (slerp, nearswap, "
        "arcee_fusion) and for differing anchor/other parameters; may be set true, never false against that.",
    )
    randomised: bool | None = Field(
        None, description="Derived: the method prunes at random (dare_*, della*), so the merge seed matters."
    )
    uses_base: bool | None = Field(
        None,
        description="The catalog base is the mergekit base_model. Derived: true where the method requires a base "
        "(task arithmetic family), false where it ignores one (linear) or the anchor is the base (slerp); "
        "for optional-base methods (nuslerp, multislerp) default true (merge task vectors).",
    )
    mixup_alpha: float | None = Field(
        None,
        gt=0,
        description="Mixup Model Merge (method linear only): each merge draws the anchor's weight λ from "
        "Beta(alpha, alpha) with the merge seed, the other model gets 1 − λ; makes the operator randomised.",
    )
    description: str = Field("", description="What the operator does and why this parameter choice.")
    reference_url: str | None = Field(None, description="Paper or page of the method (default: mergekit's).")

    @model_validator(mode="after")
    def _check_against_mergekit(self) -> Operator:
        if "." in self.name or "__" in self.name:
            raise ValueError(
                f"name {self.name!r}: no '.' (reserved for file types) or '__' (separates pair members); "
                "write e.g. 'ta_w075' for task arithmetic at weight 0.75"
            )
        info = method_info(self.method)
        if self.mixup_alpha is not None:
            self._check_mixup()
        uses_base = self._resolve_uses_base(info)
        try:
            info.check_inputs(*pair_inputs(info, uses_base=uses_base))
        except ValueError as err:
            raise ValueError(
                f"method {self.method!r} cannot merge a pair of models: mergekit says {err} "
                f"(a pair merge gives it {len(pair_inputs(info, uses_base=uses_base)[0])} inputs, counting the "
                "base); pick a method that merges two models"
            ) from None
        self._check_parameters(info, uses_base)
        anchor, other = self.per_model_parameters()
        derived_sensitive = info.anchored or anchor != other
        if self.order_sensitive is False and derived_sensitive:
            why = (
                f"{self.method} uses the first model as its base (the anchor)"
                if info.anchored
                else "anchor_parameters and other_parameters give a and b different values"
            )
            raise ValueError(f"order_sensitive: false contradicts the operator: {why}; remove order_sensitive")
        randomised = info.randomised or self.mixup_alpha is not None
        if self.randomised is False and randomised:
            why = "draws its ratio at random (mixup_alpha)" if self.mixup_alpha is not None else "prunes at random"
            raise ValueError(f"randomised: false contradicts the operator: {self.method} {why}; remove randomised")
        # Frozen model: the derived values are filled in once, here, and never change afterwards.
        object.__setattr__(self, "uses_base", uses_base)
        object.__setattr__(self, "order_sensitive", bool(self.order_sensitive) or derived_sensitive)
        object.__setattr__(self, "randomised", bool(self.randomised) or randomised)
        if self.reference_url is None:
            object.__setattr__(self, "reference_url", info.reference_url)
        return self

    def _check_mixup(self) -> None:
        if self.method != "linear":
            raise ValueError(
                f"mixup_alpha: Mixup draws a linear merge's ratio; method must be linear, not {self.method}"
            )
        given = [
            where
            for where, values in (
                ("model_parameters", self.model_parameters),
                ("anchor_parameters", self.anchor_parameters),
                ("other_parameters", self.other_parameters),
            )
            if "weight" in values
        ]
        if given:
            raise ValueError(f"{given[0]}.weight: with mixup_alpha the weights are drawn per merge; remove it")

    def mixup_weight(self, seed: int) -> float:
        """The anchor's weight λ of a Mixup merge with this seed (Beta(alpha, alpha)); the other gets 1 − λ."""
        return random.Random(seed).betavariate(self.mixup_alpha, self.mixup_alpha)

    def _resolve_uses_base(self, info: MethodInfo) -> bool:
        if info.anchored:
            if self.uses_base:
                raise ValueError(
                    f"uses_base: true, but {self.method} takes the anchor a as its base_model, not the catalog "
                    "base; remove uses_base"
                )
            return False
        if info.base == "required":
            if self.uses_base is False:
                raise ValueError(f"uses_base: false, but {self.method} requires a base model; remove uses_base")
            return True
        if info.base in ("ignored", "forbidden"):
            if self.uses_base:
                raise ValueError(
                    f"uses_base: true, but {self.method} takes no base model (mergekit: base {info.base}); "
                    "remove uses_base"
                )
            return False
        # Optional base: merging task vectors is the default, because the experts sit within 1 % of the base's
        # weight norm (measured on the built-in catalog), where interpolating raw weights ≈ linear.
        return True if self.uses_base is None else self.uses_base

    def _check_parameters(self, info: MethodInfo, uses_base: bool) -> None:
        known_global = info.names()
        known_model = info.names(per_model=True)
        for where, values, allowed in (
            ("parameters", self.parameters, known_global),
            ("model_parameters", self.model_parameters, known_model),
            ("anchor_parameters", self.anchor_parameters, known_model),
            ("other_parameters", self.other_parameters, known_model),
        ):
            for key, value in values.items():
                if key not in allowed:
                    hint = ""
                    if key in known_global:
                        hint = f"; {key!r} is a global parameter of {self.method}: move it to `parameters`"
                    raise ValueError(
                        f"{where}.{key}: {self.method} has no {'per-model ' if where != 'parameters' else ''}"
                        f"parameter {key!r}; allowed: {', '.join(allowed) or '(none)'}{hint}"
                    )
                _check_value(info, where, key, value)
        anchor, other = self.per_model_parameters()
        for p in info.parameters.values():
            if not p.required or p.name in self.parameters or (p.name == "weight" and self.mixup_alpha is not None):
                continue
            where = "model_parameters" if p.per_model else "parameters"
            if p.per_model and p.name in anchor and p.name in other:
                if uses_base and not p.non_base_only:
                    raise ValueError(
                        f"parameters.{p.name}: {self.method} needs {p.name!r} for the base model too; "
                        "set it in `parameters`"
                    )
                continue
            raise ValueError(f"{where}.{p.name}: {self.method} requires {p.name!r}; set it (no mergekit default)")
        if self.method in ("della", "della_linear"):

            def resolved(params: Mapping[str, Any], key: str) -> float | None:
                default = info.parameters[key].default if key in info.parameters else None
                return _scalar(params.get(key, self.parameters.get(key, default)))

            for label, params in (("anchor", anchor), ("other", other)):
                density, epsilon = resolved(params, "density"), resolved(params, "epsilon")
                if density is not None and epsilon is not None and 0 < density < 1:
                    if not (0 < density - epsilon and density + epsilon < 1):
                        raise ValueError(
                            f"model_parameters.epsilon: {self.method} needs density ± epsilon inside (0, 1) "
                            f"({label} model: density {density}, epsilon {epsilon}); lower epsilon"
                        )

    def per_model_parameters(self) -> tuple[dict[str, ParameterValue], dict[str, ParameterValue]]:
        """The per-model parameters of the anchor a and of the other model b."""
        return (
            {**self.model_parameters, **self.anchor_parameters},
            {**self.model_parameters, **self.other_parameters},
        )

    @property
    def info(self) -> MethodInfo:
        """What mergekit declares about the method."""
        return method_info(self.method)

    @property
    def base_role(self) -> Literal["anchor", "catalog", "none"]:
        """Which checkpoint is mergekit's ``base_model``: the anchor a, the catalog base, or none."""
        if self.info.anchored:
            return "anchor"
        return "catalog" if self.uses_base else "none"

    def pair_to_merge(self, a: str, b: str) -> tuple[str, str]:
        """The ordered pair whose merge serves (a, b): (a, b) itself, or the canonical pair if symmetric."""
        return (a, b) if self.order_sensitive else canonical_pair(a, b)

    def to_mergekit_config(
        self,
        a_dir: str | os.PathLike,
        b_dir: str | os.PathLike,
        base_dir: str | os.PathLike | None,
        *,
        seed: int | None,
    ) -> dict[str, Any]:
        """The mergekit YAML mapping that merges the ordered pair (a, b), with a as the anchor.

        Models are given as absolute local paths, so mergekit never contacts the hub; merge arithmetic runs in
        float32 (``dtype``). No ``tokenizer_source`` is set: with one (even ``base``) mergekit re-serialises
        the tokenizer and resizes embeddings to the tokenizer's length, which truncates padded vocabularies
        (mergekit issue #425). :func:`simmerge.merges.merging.merge_pair` copies the base's tokenizer files instead.

        Parameters
        ----------
        a_dir, b_dir : path-like
            Checkpoint directories of the anchor a and the other model b.
        base_dir : path-like or None
            The catalog base; may be None when the operator does not use it (``base_role != "catalog"``).
        seed : int or None
            The merge seed. mergekit takes it as a run option (``MergeOptions.random_seed``), not a YAML key, so
            it is not in the mapping; it is required here for a randomised operator so that a missing seed
            fails before the merge rather than giving an unreproducible one.

        Returns
        -------
        dict
            A mapping that ``mergekit.config.MergeConfiguration.model_validate`` accepts (checked here). For a
            symmetric operator the two models are listed in sorted path order, so (a, b) and (b, a) give
            equal mappings.

        Raises
        ------
        ValueError
            If a path holds '@' or '+' (mergekit reads them as revision and LoRA separators), two inputs are the
            same checkpoint (mergekit refuses duplicates), the base is needed but missing, or a randomised
            operator gets no seed.
        """
        if self.randomised and seed is None:
            raise ValueError(f"operator {self.name!r} ({self.method}) prunes at random and needs a seed")
        a, b = _model_path(a_dir, "a_dir"), _model_path(b_dir, "b_dir")
        base = _model_path(base_dir, "base_dir") if base_dir is not None else None
        if a == b:
            raise ValueError(f"a_dir and b_dir are the same checkpoint {a!r}; mergekit refuses the same model twice")
        anchor_params, other_params = self.per_model_parameters()
        if not self.order_sensitive and b < a:
            # Canonical order: both orders of a symmetric operator give the same YAML, hence the same weights.
            a, b = b, a
        if self.mixup_alpha is not None:
            ratio = self.mixup_weight(seed)
            anchor_params, other_params = {**anchor_params, "weight": ratio}, {**other_params, "weight": 1 - ratio}
        config: dict[str, Any] = {
            "merge_method": self.method,
            "models": [_model_entry(a, anchor_params), _model_entry(b, other_params)],
            "dtype": "float32",
        }
        role = self.base_role
        if role == "anchor":
            config["base_model"] = a
        elif role == "catalog":
            if base is None:
                raise ValueError(f"operator {self.name!r} ({self.method}) merges task vectors and needs base_dir")
            if base in (a, b):
                raise ValueError(f"base_dir {base!r} is also one of the merged models; mergekit refuses duplicates")
            config["base_model"] = base
        if self.parameters:
            config["parameters"] = _plain(self.parameters)
        from mergekit.config import MergeConfiguration

        MergeConfiguration.model_validate(config)
        return config

    def to_mergekit_config_all(
        self, model_dirs: Sequence[str | os.PathLike], base_dir: str | os.PathLike | None, *, seed: int | None
    ) -> dict[str, Any]:
        """The mergekit YAML mapping that merges every model of ``model_dirs`` in one step (multi-way baselines).

        Each model gets the operator's ``model_parameters``; only a symmetric operator has a meaning here.

        Raises
        ------
        ValueError
            If the operator is order-sensitive, mergekit's method does not take that many inputs, or a
            randomised operator gets no seed.
        """
        if self.order_sensitive:
            raise ValueError(
                f"operator {self.name!r} is order-sensitive ({self.method}); it merges an ordered pair, not a set"
            )
        if self.mixup_alpha is not None:
            raise ValueError(f"operator {self.name!r} draws a pair's ratio (Mixup); it merges a pair, not a set")
        if self.randomised and seed is None:
            raise ValueError(f"operator {self.name!r} ({self.method}) prunes at random and needs a seed")
        return multi_model_config(
            self.method,
            model_dirs,
            base_dir if self.uses_base else None,
            parameters=self.parameters,
            model_parameters=self.model_parameters,
        )


def multi_model_config(
    method: str,
    model_dirs: Sequence[str | os.PathLike],
    base_dir: str | os.PathLike | None,
    *,
    parameters: Mapping[str, ParameterValue] | None = None,
    model_parameters: Mapping[str, ParameterValue] | None = None,
) -> dict[str, Any]:
    """A mergekit YAML mapping for ``method`` over ``model_dirs`` (sorted), with ``base_dir`` as ``base_model``.

    Raises
    ------
    ValueError
        If mergekit's input contract refuses the number of models (e.g. model_stock with fewer than three, counting
        the base) or the base use, or two inputs are the same checkpoint.
    """
    paths = sorted(_model_path(path, "model_dirs") for path in model_dirs)
    base = _model_path(base_dir, "base_dir") if base_dir is not None else None
    inputs = paths + ([base] if base is not None else [])
    if len(set(inputs)) != len(inputs):
        raise ValueError(f"{method}: an input is given twice ({inputs}); mergekit refuses duplicates")
    info = method_info(method)
    if info.base == "required" and base is None:
        raise ValueError(f"{method} requires a base model; give base_dir")
    try:
        info.check_inputs(inputs, base)
    except ValueError as err:
        raise ValueError(f"{method} cannot merge {len(paths)} models: mergekit says {err}") from None
    config: dict[str, Any] = {
        "merge_method": method,
        "models": [_model_entry(path, model_parameters or {}) for path in paths],
        "dtype": "float32",
    }
    if base is not None:
        config["base_model"] = base
    if parameters:
        config["parameters"] = _plain(parameters)
    from mergekit.config import MergeConfiguration

    MergeConfiguration.model_validate(config)
    return config


@dataclass(frozen=True)
class Range:
    """The values a numeric parameter can meaningfully take, and what it means."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low = "-∞" if self.low == -math.inf else f"{self.low:g}"
        high = "∞" if self.high == math.inf else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


_FINITE = Range(-math.inf, math.inf, True, True, "any finite number")
_POSITIVE = Range(0.0, math.inf, True, True, "a positive number")
# The meaningful range of every numeric parameter of mergekit's methods: by (method, parameter), else by parameter.
# mergekit validates types only; out of range it either fails mid-merge or, worse, runs something else silently.
PARAMETER_RANGES: dict[str | tuple[str, str], Range] = {
    "weight": _FINITE,
    "scale": _FINITE,
    "density": Range(0.0, 1.0, low_open=True, meaning="the fraction of each task vector kept (1: all)"),
    "gamma": Range(0.0, 1.0, high_open=True, meaning="the fraction of the largest entries breadcrumbs removes"),
    "lambda": Range(0.0, math.inf, True, True, "the scale of the merged task vector"),
    "epsilon": Range(0.0, 1.0, high_open=True, meaning="della's spread of keep probabilities around density"),
    ("ram", "epsilon"): Range(0.0, math.inf, True, True, "the threshold below which a task-vector entry is zero"),
    ("ramplus_tl", "epsilon"): Range(0.0, math.inf, True, True, "the threshold below which an entry is zero"),
    "select_topk": Range(0.0, 1.0, low_open=True, meaning="the fraction of entries sce keeps by variance"),
    ("slerp", "t"): Range(0.0, 1.0, meaning="the interpolation from the anchor (0) to the other model (1)"),
    ("nearswap", "t"): Range(0.0, math.inf, True, True, "the similarity threshold"),
    "eps": _POSITIVE,
    "tol": _POSITIVE,
    "max_iter": Range(1.0, math.inf, high_open=True, meaning="iterations, at least one"),
    "r": Range(0.0, 1.0, low_open=True, meaning="the fraction of entries ramplus_tl rescales"),
    "alpha": Range(0.0, 1.0, meaning="ramplus_tl's blending factor"),
}


def parameter_range(method: str, key: str) -> Range | None:
    """The meaningful range of a numeric parameter of a method (:data:`PARAMETER_RANGES`), if it has one."""
    return PARAMETER_RANGES.get((method, key), PARAMETER_RANGES.get(key))


def _check_value(info: MethodInfo, where: str, key: str, value: Any) -> None:
    """Check each scalar inside a parameter value with mergekit's own validator for that parameter, then its
    range (:data:`PARAMETER_RANGES`)."""
    validate = info.parameters[key].validate
    scalars = [v for item in value for v in _leaves(item)] if isinstance(value, list) else list(_leaves(value))
    for scalar in scalars:
        if validate is not None:
            try:
                validate(scalar)
            except (ValidationError, ValueError, TypeError) as err:
                first = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
                raise ValueError(f"{where}.{key}: {scalar!r} is not valid for {info.name}: {first}") from None
        allowed = parameter_range(info.name, key)
        number = _scalar(scalar)
        if allowed is not None and number is not None and not (math.isfinite(number) and number in allowed):
            raise ValueError(
                f"{where}.{key}: {scalar!r} is outside {allowed}, the range of {key!r} for {info.name} "
                f"({allowed.meaning}); pick a value inside it"
            )


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, ConditionalValue):
        yield from _leaves(value.value)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _scalar(value: Any) -> float | None:
    """A plain number, or None for gradients and filtered values (checked per tensor by mergekit)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _plain(params: Mapping[str, ParameterValue]) -> dict[str, Any]:
    """Parameter values as plain YAML data (filtered values become ``{filter, value}`` mappings)."""

    def convert(value: Any) -> Any:
        if isinstance(value, ConditionalValue):
            return value.model_dump(exclude_none=True)
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return {key: convert(value) for key, value in params.items()}


def _model_entry(path: str, params: Mapping[str, ParameterValue]) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": path}
    if params:
        entry["parameters"] = _plain(params)
    return entry


def _model_path(path: str | os.PathLike, what: str) -> str:
    text = str(Path(path).expanduser().absolute())
    if "@" in text or "+" in text:
        raise ValueError(
            f"{what} {text!r} contains '@' or '+', which mergekit parses as a revision or LoRA separator; "
            "move the checkpoint to a path without them"
        )
    return text


def canonical_pair(a: str, b: str) -> tuple[str, str]:
    """The two names of a pair in sorted order: the one merge a symmetric operator makes for (a, b) and (b, a).

    Raises
    ------
    ValueError
        If ``a == b`` (mergekit refuses to merge a model with itself).
    """
    if a == b:
        raise ValueError(f"a pair needs two different checkpoints, got {a!r} twice")
    return (a, b) if a < b else (b, a)


def merge_jobs(
    operators: Mapping[str, Operator], ordered_pairs: Iterable[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """The merges a grid of operators × ordered pairs needs: ``(operator, a, b)``, each once.

    A symmetric operator contributes its canonical pair once; an order-sensitive one every ordered pair.
    """
    jobs: dict[tuple[str, str, str], None] = {}
    for name, operator in operators.items():
        for a, b in ordered_pairs:
            jobs[(name, *operator.pair_to_merge(a, b))] = None
    return list(jobs)


def load_operators(entries: Sequence[Mapping[str, Any] | Operator]) -> dict[str, Operator]:
    """Validate a list of operator entries (the config's ``operators``) against the installed mergekit.

    Parameters
    ----------
    entries : sequence of mapping, Operator or str
        One mapping per operator, with the fields of :class:`Operator`, or the name of a documented operator
        (:func:`documented_operators`).

    Returns
    -------
    dict
        Operator name → :class:`Operator`, in list order.

    Raises
    ------
    ConfigError
        Listing every problem, one line each, naming the entry (``operators[3] 'ties_d20'``), the field and the
        fix: unknown method (with the known ones), a method that cannot merge a pair, an unknown or misplaced
        parameter (with the allowed names), a missing required parameter, a duplicate name.
    """
    problems: list[str] = []
    operators: dict[str, Operator] = {}
    first_index: dict[str, int] = {}
    if not entries:
        problems.append("operators: the list is empty; configure at least one operator")
    documented = documented_operators()
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            if entry not in documented:
                problems.append(
                    f"operators[{index}]: {entry!r} is not a documented operator; documented: "
                    f"{', '.join(documented)}; or give a mapping with name and method"
                )
                continue
            entry = documented[entry]
        if not isinstance(entry, Operator | Mapping):
            problems.append(f"operators[{index}]: expected a mapping with name and method, got {entry!r}")
            continue
        raw = entry.model_dump() if isinstance(entry, Operator) else dict(entry)
        label = f"operators[{index}] {raw.get('name', '(no name)')!r}"
        try:
            operator = Operator.model_validate(raw)
        except ValidationError as error:
            problems.extend(_describe(error, label))
            continue
        if operator.name in operators:
            problems.append(
                f"{label}: name is used twice (also operators[{first_index[operator.name]}]); "
                "every operator name must be unique"
            )
            continue
        operators[operator.name] = operator
        first_index[operator.name] = index
    if problems:
        raise ConfigError("invalid operators:\n" + "\n".join(f"  - {p}" for p in problems))
    return operators


def _describe(error: ValidationError, label: str) -> list[str]:
    """One line per problem of an operator entry: the entry, the field (if pydantic knows it), the message."""
    lines = []
    for item in error.errors():
        field_path = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = f" (got {value!r})" if field_path and not isinstance(value, dict | list) else ""
        fix = ""
        if item["type"] == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") == SLUG_PATTERN:
            fix = f"; {SLUG_FIX}"
        lines.append(f"{label}: {field_path + ': ' if field_path else ''}{message}{shown}{fix}")
    return lines


def documented_operators() -> dict[str, dict[str, Any]]:
    """Name → config entry of every documented operator: the default grid's, then the available others
    (:data:`simmerge.core.config.DEFAULT_OPERATORS`, :data:`simmerge.core.config.AVAILABLE_OPERATORS`)."""
    return {entry["name"]: dict(entry) for entry in (*DEFAULT_OPERATORS, *AVAILABLE_OPERATORS)}


def default_operators() -> dict[str, Operator]:
    """:data:`simmerge.core.config.DEFAULT_OPERATORS`, validated against the installed mergekit."""
    return load_operators(DEFAULT_OPERATORS)


__all__ = [
    "PARAMETER_RANGES",
    "ConditionalValue",
    "MethodInfo",
    "Operator",
    "ParameterInfo",
    "Range",
    "canonical_pair",
    "default_operators",
    "documented_operators",
    "load_operators",
    "merge_jobs",
    "mergekit_methods",
    "method_info",
    "multi_model_config",
    "pair_inputs",
    "parameter_range",
]
