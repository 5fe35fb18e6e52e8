"""The run configuration as pydantic models: one place for fields, defaults, descriptions and cross-field rules.

The JSON schema that Snakemake validates ``config/config.yaml`` against (``config/schema/config.schema.yaml``)
is generated from these models by ``simmerge schema``; a test keeps the committed file in sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

Slug = Annotated[
    str,
    Field(
        pattern=SLUG_PATTERN,
        description="A slug: letters, digits, '.', '_' or '-', starting with a letter or digit; no '__'.",
    ),
]


class ConfigError(ValueError):
    """A configuration mistake, with a message naming the field and the fix."""


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuiltinTaskSpec(Frozen):
    """One built-in generated skill (the task name is the skill name) and its split sizes."""

    kind: Literal["builtin"] = Field("builtin", description="A built-in skill generated here (the default kind).")
    n_train: int = Field(900, ge=1, description="Training items (fine-tuning experts).")
    n_eval: int = Field(150, ge=1, description="Evaluation items scored by lm-eval.")
    n_probe: int = Field(32, ge=1, description="Unlabelled probe prompts for similarity features.")


class HarnessTaskSpec(Frozen):
    """An lm-eval task scored by lm-eval's own definition: how many items, with which prompt settings."""

    task: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The lm-eval task or group name; default: this entry's name.",
    )
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples; default: the task's own setting.")
    apply_chat_template: bool = Field(False, description="Wrap prompts in the tokenizer's chat template.")
    fewshot_as_multiturn: bool = Field(
        False, description="Few-shot examples as chat turns (needs apply_chat_template)."
    )
    n_eval: int | None = Field(
        150,
        ge=1,
        description="Test documents scored per task (a seeded subset, by index); null: every test document.",
    )
    n_probe: int = Field(32, ge=1, description="Unlabelled probe prompts, from documents that are never scored.")
    n_train: int = Field(900, ge=1, description="Training documents a finetune source uses (seeded subset).")
    metric: str | None = Field(
        None,
        description="The metric labels are built from ('acc', 'exact_match,flexible-extract'); default: the "
        "task's first metric and filter, as lm-eval lists them.",
    )
    dataset_path: str | None = Field(
        None,
        description="A local copy of the task's dataset (a folder laid out as the hub repository); relative "
        "paths are taken from the workflow directory. Default: the task's own dataset_path, through the "
        "Hugging Face cache.",
    )
    dataset_kwargs: dict[str, Any] | None = Field(
        None,
        description="Replaces the task's dataset_kwargs (e.g. data_files; relative file paths are taken from "
        "the workflow directory).",
    )

    @model_validator(mode="after")
    def _multiturn_needs_chat(self) -> HarnessTaskSpec:
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise ValueError("fewshot_as_multiturn needs apply_chat_template: true")
        return self


class LmevalTaskSpec(HarnessTaskSpec):
    kind: Literal["lmeval"] = Field(description="A task or group of lm-eval's own registry, by name.")


class YamlTaskSpec(HarnessTaskSpec):
    kind: Literal["yaml"] = Field(description="A task from the user's own lm-eval task YAML file or folder.")
    path: str = Field(
        description="The task YAML or the folder of task YAMLs (lm-eval's include_path) with its !function "
        "helpers; relative paths are taken from the workflow directory."
    )


def _task_kind(value: Any) -> str:
    """The ``kind`` of a task entry; an entry without one is a built-in skill (configs written before kinds)."""
    return value.get("kind", "builtin") if isinstance(value, dict) else getattr(value, "kind", "builtin")


TASK_KINDS = ("builtin", "lmeval", "yaml")

TaskSpec = Annotated[
    Annotated[BuiltinTaskSpec, Tag("builtin")]
    | Annotated[LmevalTaskSpec, Tag("lmeval")]
    | Annotated[YamlTaskSpec, Tag("yaml")],
    Discriminator(_task_kind),
]


def parse_task_spec(raw: dict[str, Any]) -> BuiltinTaskSpec | LmevalTaskSpec | YamlTaskSpec:
    """One ``tasks`` entry, validated (as a job's params hand it over)."""
    return TypeAdapter(TaskSpec).validate_python(raw)


class TrainSpec(Frozen):
    """Hyper-parameters of a full fine-tune (or of the tiny model's brief pre-training)."""

    steps: int = Field(100, ge=1, description="Optimizer steps.")
    batch_size: int = Field(16, ge=1, description="Examples per step.")
    lr: float = Field(1.0e-4, gt=0, description="Peak AdamW learning rate (linear warm-up, then linear decay).")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_length: int = Field(64, ge=8, description="Token budget of one prompt + answer.")
    seed: int | None = Field(None, description="Seed of the example order and dropout; default: the run seed.")


class HFSource(Frozen):
    kind: Literal["hf"] = Field(description="Download a Hugging Face repo at a pinned revision.")
    repo_id: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="Hub repository id, 'org/name'.")
    revision: str = Field(
        pattern=r"^[^\s]+$",
        description="A 40-hex commit sha, or a branch or tag that `simmerge lock CONFIG` locks to the commit it points "
        "at (the lock file beside the config); the workflow fetches commits only.",
    )
    trust_remote_code: bool = Field(False, description="Allow the repo's own modelling code (off by default).")


class LocalSource(Frozen):
    kind: Literal["local"] = Field(description="Use an existing Hugging Face directory in place.")
    path: str = Field(description="Directory with config.json, *.safetensors and tokenizer files.")
    trust_remote_code: bool = Field(False, description="Allow the directory's own modelling code.")


class GGUFSource(Frozen):
    kind: Literal["gguf"] = Field(description="Dequantize a GGUF file to an fp32 safetensors checkpoint.")
    path: str | None = Field(None, description="A GGUF file on disk (give this or package + file).")
    package: str | None = Field(None, description="An installed Python package that ships the GGUF file.")
    file: str | None = Field(None, description="The GGUF file name inside `package`.")

    @model_validator(mode="after")
    def _one_location(self) -> GGUFSource:
        if (self.path is None) == (self.package is None or self.file is None):
            raise ValueError("a gguf source needs either `path` or both `package` and `file`")
        return self


class TinySource(Frozen):
    kind: Literal["tiny"] = Field(description="A small random Llama made from a seed (tests, smoke runs).")
    hidden_size: int = Field(64, ge=8, description="Hidden size.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks.")
    num_heads: int = Field(4, ge=1, description="Attention heads (must divide hidden_size).")
    seed: int | None = Field(None, description="Initialisation seed; default: the run seed.")
    pretrain: TrainSpec | None = Field(
        None, description="Optional brief full-text pre-training on the mixture of all tasks' train splits."
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> TinySource:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        return self


class FinetuneSource(Frozen):
    kind: Literal["finetune"] = Field(description="Fine-tune another catalog entry on this entry's tasks.")
    parent: Slug | None = Field(None, description="Catalog entry to start from; default: the base.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Fine-tuning hyper-parameters.")


Source = Annotated[
    HFSource | LocalSource | GGUFSource | TinySource | FinetuneSource,
    Field(discriminator="kind", description="Where the checkpoint comes from."),
]


class CheckpointSpec(Frozen):
    """One catalog entry."""

    name: Slug = Field(description="Unique slug; names files and wildcards.")
    source: Source
    tasks: list[Slug] = Field(
        default_factory=list,
        description="Home task(s): what the expert is good at, and what a finetune source trains on.",
    )

    @model_validator(mode="after")
    def _no_pair_separator(self) -> CheckpointSpec:
        if "__" in self.name:
            raise ValueError(f"name {self.name!r} contains '__', which separates the members of a pair")
        return self


# How far one replicate moves an expert's seed: replicate r trains with seed + r * REPLICATE_SEED_STRIDE, far from
# the small seeds configs give their experts, so no replicate reuses another expert's (or replicate's) seed.
REPLICATE_SEED_STRIDE = 1_000_000


class CatalogSpec(Frozen):
    base: CheckpointSpec = Field(description="The pretrained base every expert shares.")
    experts: list[CheckpointSpec] = Field(min_length=2, description="Fine-tuned checkpoints of the base.")
    replicate: int = Field(
        0,
        ge=0,
        description=(
            "Independent rebuild of the experts: every seeded expert (finetune, tiny) uses its seed + "
            f"replicate * {REPLICATE_SEED_STRIDE} (example order, dropout, initialisation); 0: as configured. "
            "The base, the task data and the merge seeds stay. Run a replicate under another run_name."
        ),
    )


class ScoringSpec(Frozen):
    batch_size: int | Literal["auto"] = Field(
        16, description="lm-eval batch size, or auto (lm-eval finds the largest that fits: meant for a GPU)."
    )
    limit: int | None = Field(None, ge=1, description="Score only the first N eval items (null: all).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights dtype of scoring: auto is bfloat16 on CUDA and float32 on CPU; the dtype used is in "
        "every score record.",
    )
    exact_match: Literal["one_pass", "generate"] = Field(
        "one_pass",
        description="How exact match of a built-in generative skill is decided: one_pass (one teacher-forced pass "
        "over prompt + answer + stop; correct when every token is the argmax) or generate (greedy decoding).",
    )


class FeatureSpec(Frozen):
    """How probe passes and weight sketches summarise a checkpoint (simmerge.features.probe_pass and .sketch)."""

    top_k: int = Field(256, ge=1, description="Next-token log-probs kept per probe position (top-k + residual).")
    # Off by default: per-task budgets would mix exact and top-k KL across tasks (measured on SmolLM2: full
    # distributions were 168 of a 218 MB summary, and one task fell back to top-k while five stayed full).
    full_vocab_max_mb: float = Field(
        0, ge=0, description="Store full next-token distributions of a task when they fit in this many MB."
    )
    hidden_max_mb: float = Field(
        64, ge=0, description="Store hidden states in fp16 when a task's fit in this many MB, else project."
    )
    attention_max_mb: float = Field(
        64, ge=0, description="Store attention maps in fp16 when a task's fit in this many MB, else project."
    )
    projection_dim: int = Field(256, ge=8, description="Width of the shared random projection (JL sketch).")
    sketch_size: int = Field(200_000, ge=100, description="Task-vector coordinates sampled per checkpoint.")
    top_fraction: float = Field(0.2, gt=0, lt=1, description="Top-magnitude fraction for mask/sign features.")
    batch_size: int = Field(16, ge=1, description="Probe prompts per forward pass.")
    max_length: int = Field(64, ge=4, description="Probe tokens kept (longer probes are cut).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype of the probe passes: auto is bfloat16 on CUDA and float32 on CPU."
    )


# Default operators of the built-in SmolLM2 catalog, as plain config entries (the merges.operators default;
# simmerge.merges.operators validates them against mergekit). Chosen from a first merge grid on SmolLM2 experts
# (6 expert pairs, 60 items per task); λ and density moved the per-pair winner as much as the method did, so
# parameter variants are operators of their own. The descriptions state what that grid measured; nearswap_t0001
# joined later, measured against this grid on the default catalog (docs/extra-operators-default.md).
DEFAULT_OPERATORS: list[dict[str, Any]] = [
    {
        "name": "linear",
        "method": "linear",
        "model_parameters": {"weight": 0.5},
        "description": "Model soup (a + b) / 2. Best on both same-format pairs (n2w_fr+n2w_de, rhyme_mc+capital_mc); "
        "also equals task arithmetic at weight 0.5 / 0.5 exactly, so that variant is not listed.",
    },
    {
        "name": "slerp_t30",
        "method": "slerp",
        "parameters": {"t": 0.3},
        "description": "Spherical interpolation from the anchor a, 30 % of the way to b. At t = 0.5 slerp scored "
        "exactly like linear on all 6 pairs, so t is moved off 0.5 to make the order matter.",
    },
    {
        "name": "nuslerp_w70",
        "method": "nuslerp",
        "anchor_parameters": {"weight": 0.7},
        "other_parameters": {"weight": 0.3},
        # mergekit registers nuslerp without a reference_url; its method guide documents it.
        "reference_url": "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md",
        "description": "SLERP of the task vectors (base = catalog base), weights 0.7 anchor / 0.3 other (t = 0.3). "
        "Task vectors are nearly orthogonal (cos 0.01-0.14), where SLERP keeps more of each than an average.",
    },
    {
        "name": "ta_w075",
        "method": "task_arithmetic",
        "model_parameters": {"weight": 0.75},
        "description": "base + 0.75 (tau_a + tau_b). Between averaging (0.5) and summing (1.0); best or second "
        "on 3 of 6 pairs: the best scale is 0.5-0.75 for conflicting pairs, 1.0 for orthogonal ones.",
    },
    {
        "name": "ta_w100",
        "method": "task_arithmetic",
        "model_parameters": {"weight": 1.0},
        "description": "base + tau_a + tau_b: keeps each skill at full strength; best or tied best on the "
        "generative + multiple-choice pairs, overshoots on conflicting pairs.",
    },
    {
        "name": "ties_d20",
        "method": "ties",
        "parameters": {"normalize": False},
        "model_parameters": {"weight": 1.0, "density": 0.2},
        "description": "TIES keeping the top 20 % of each task vector by magnitude, sign election, summed. Best of "
        "10 configurations on the conflicting pair and worst summing one on 3 of 4 orthogonal pairs.",
    },
    {
        "name": "ties_d50",
        "method": "ties",
        "parameters": {"normalize": False},
        "model_parameters": {"weight": 1.0, "density": 0.5},
        "description": "TIES at density 0.5, summed (normalize off, as measured): within noise of TA 1.0 on the "
        "orthogonal pairs.",
    },
    {
        "name": "dare_ties_d50",
        "method": "dare_ties",
        "model_parameters": {"weight": 1.0, "density": 0.5},
        "description": "DARE: drop half of each task vector at random and rescale the rest x2, then TIES sign "
        "election. Randomised: a seed change moved its score by up to 0.066, as much as operator gaps.",
    },
    {
        "name": "dare_linear_d50",
        "method": "dare_linear",
        "model_parameters": {"weight": 1.0, "density": 0.5},
        "description": "DARE without sign election: random half of each task vector, rescaled, summed; equals TA "
        "1.0 in expectation, so it isolates the effect of random dropping (not in that first grid).",
    },
    {
        "name": "della_d50",
        "method": "della",
        "model_parameters": {"weight": 1.0, "density": 0.5, "epsilon": 0.1},
        "description": "DELLA: random dropping with keep-probability 0.4-0.6 ranked by magnitude, rescaled, sign "
        "election, normalised by the kept weights (mergekit defaults); sat between the two families.",
    },
    {
        "name": "breadcrumbs_d90",
        "method": "breadcrumbs",
        "model_parameters": {"weight": 1.0, "density": 0.9, "gamma": 0.01},
        "description": "Model breadcrumbs: drop the 1 % largest and the smallest entries of each task vector to "
        "keep 90 %, then sum; never best but distinct from TA on the generative pairs.",
    },
    {
        "name": "nearswap_t0001",
        "method": "nearswap",
        "parameters": {"t": 0.0001},
        "description": "Nearswap from the anchor a: take b's value where a and b are within t = 1e-4 of each "
        "other, interpolate towards a elsewhere (mergekit's documented example value). Order-sensitive. The one "
        "extra method that joined the grid (docs/extra-operators-default.md, all 10 default pairs): distinct from "
        "every grid candidate and above the grid's best on de|fr (+0.14 both orders) and de|fr_hot (+0.03), "
        "about 6 s of merging and 33 s of scoring per candidate.",
    },
]


# The other methods of mergekit 0.1.5's registry that merge two fine-tunes (+ the base), and a Mixup-style operator:
# documented and checked against mergekit like the defaults, not in the default grid (config/README.md: which
# joined it, nearswap, was decided by measured spread and cost). A config names one by its name in merges.operators.
AVAILABLE_OPERATORS: list[dict[str, Any]] = [
    {
        "name": "sce_k10",
        "method": "sce",
        "parameters": {"select_topk": 0.1},
        "description": "SCE: keep the 10 % of task-vector entries with the largest variance across the models, "
        "calculate per-entry weights from their squared magnitudes, elect signs as TIES does and sum.",
    },
    {
        "name": "karcher",
        "method": "karcher",
        "description": "Karcher (Riemannian) mean of the two weight tensors on the sphere, mergekit's defaults "
        "(10 iterations, tolerance 1e-5); takes no base.",
    },
    {
        "name": "multislerp_w50",
        "method": "multislerp",
        "model_parameters": {"weight": 0.5},
        "description": "Multi-model SLERP of the task vectors with equal weights: for two models, SLERP at t = 0.5 "
        "from the base, symmetric in the pair.",
    },
    {
        "name": "della_linear_d50",
        "method": "della_linear",
        "model_parameters": {"weight": 1.0, "density": 0.5, "epsilon": 0.1},
        "description": "DELLA's magnitude-ranked random dropping without sign election: the linear counterpart of "
        "della_d50.",
    },
    {
        "name": "breadcrumbs_ties_d90",
        "method": "breadcrumbs_ties",
        "model_parameters": {"weight": 1.0, "density": 0.9, "gamma": 0.01},
        "description": "Model breadcrumbs (drop the 1 % largest and the smallest entries, keep 90 %) with TIES "
        "sign election: breadcrumbs_d90 plus sign election.",
    },
    {
        "name": "arcee_fusion",
        "method": "arcee_fusion",
        "description": "Arcee Fusion: keep the anchor a and import b's entries where they differ most by an "
        "importance score with a dynamic threshold. Order-sensitive; randomised on tensors over 1M entries (its "
        "quantiles are estimated from a random sample).",
    },
    {
        "name": "model_stock",
        "method": "model_stock",
        "description": "Model Stock: interpolate the average of the fine-tunes towards the base by a ratio computed "
        "from the angle between their task vectors (per tensor).",
    },
    {
        "name": "ram",
        "method": "ram",
        "description": "RAM: average the task vectors where both models changed an entry, keep the single "
        "change where only one did (mergekit's defaults).",
    },
    {
        "name": "ramplus_tl",
        "method": "ramplus_tl",
        "description": "RAM+ with its tensor-level variant (mergekit's defaults: r = 0.1, alpha = 0.2).",
    },
    {
        "name": "mixup_a05",
        "method": "linear",
        "mixup_alpha": 0.5,
        "description": "Mixup Model Merge: a linear merge whose ratio is drawn per merge from Beta(0.5, 0.5), "
        "seeded by the merge seed (a weight λ, the other 1 − λ); the label averages the seeds' merges.",
    },
]


def _default_operators() -> list[dict[str, Any]]:
    return [dict(entry) for entry in DEFAULT_OPERATORS]


class MergeSpec(Frozen):
    """The merge grid: operators applied to every ordered expert pair, and how merges are scored."""

    operators: list[dict[str, Any] | Slug] = Field(
        default_factory=_default_operators,
        description="Merge operators: the name of a documented operator (the defaults and "
        "simmerge.core.config.AVAILABLE_OPERATORS), or a mapping of simmerge.merges.operators.Operator fields "
        "(name, method, parameters, model_parameters, anchor_parameters, other_parameters, ...), validated "
        "against mergekit at load.",
    )
    seed: int | None = Field(None, description="random_seed of randomised operators (DARE, DELLA); default: run seed.")
    repeats: int = Field(
        3,
        ge=1,
        description="Merges of each randomised operator, with seeds seed, seed+1, ...; its label is their mean.",
    )
    repeat_pairs: int | None = Field(
        None,
        ge=1,
        description="Pairs whose randomised operators get all `repeats` merges (chosen by the merge seed, stable "
        "when experts are added); the other pairs get one, and their labels' seed spread is the one pooled per "
        "operator over these pairs. null: every pair gets all.",
    )
    tie_z: float = Field(
        1.0,
        ge=0,
        description="Operators within tie_z combined standard errors of a pair's best count as tied with it.",
    )
    keep_merged: bool = Field(
        False, description="Keep each merged checkpoint in merges/<a>__<b>/<operator>.merged/ (else deleted)."
    )
    scratch_dir: str | None = Field(
        None,
        description="Where merges live while scored (null: /dev/shm when it has room, else the system temp dir).",
    )
    tasks: Literal["home", "all"] = Field(
        "home", description="Score a merge on the union of its parents' home tasks, or on every task."
    )
    parent_drift: bool = Field(
        True,
        description="Also pass each merge (its first seed) over its parents' home-task probes and record KL(parent "
        "‖ merge): the label-free baseline's signal (selection method label_free), a probe pass per home task.",
    )


# Evaluation protocols of the comparison (simmerge.evaluate.compare), defined here, not in simmerge.evaluate.compare,
# so that the workflow can name them at parse time without importing scikit-learn:
#   checkpoint       a new checkpoint (with its near-duplicates) arrives: its pairs are tested, every pair once;
#   task_seen_pairs  a new task for pairs already merged and scored on other tasks (not a cold start);
#   cold_start       a new checkpoint on a new task: no merge of a test pair is in training, on any task.
PROTOCOLS = ("checkpoint", "task_seen_pairs", "cold_start")
PROTOCOL_TITLES = {
    "checkpoint": "new checkpoint (held-out checkpoint groups)",
    "task_seen_pairs": "new task for already-merged pairs",
    "cold_start": "new checkpoint on a new task (cold start)",
}


# Model families of the SimMerge predictor (simmerge.evaluate.predictor builds one scikit-learn pipeline per name):
# ridge regression, ridge with feature × operator interactions, histogram gradient boosting, random forest, MLP.
# Defined here, like PROTOCOLS, so that the config validates them without importing scikit-learn.
PREDICTOR_FAMILIES = ("ridge", "per_operator_ridge", "hgb", "forest", "mlp")
PredictorFamily = Literal[PREDICTOR_FAMILIES]


class SelectionMethodSpec(Frozen):
    """One selection method of the methods comparison (rule ``search``; simmerge.evaluate.methods)."""

    name: str = Field(
        description="Its name under the entry-point group simmerge.selection_methods (built-in: simmerge, "
        "simmerge_plus_k, successive_halving, label_free, best_fixed, random, oracle; a method of your own: its "
        "package's "
        "entry point)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the method's class.")
    label: str | None = Field(None, description="Its name in the tables; default: the name and its params.")


def _default_methods() -> list[SelectionMethodSpec]:
    methods = [SelectionMethodSpec(name="simmerge")]
    methods += [SelectionMethodSpec(name="simmerge_plus_k", params={"k": k}) for k in (1, 2, 3)]
    methods += [
        SelectionMethodSpec(name="successive_halving", params={"budget": budget}) for budget in (0.125, 0.25, 0.5, 1.0)
    ]
    return [*methods, *(SelectionMethodSpec(name=name) for name in ("label_free", "best_fixed", "random", "oracle"))]


class CmaGene(Frozen):
    """One continuous merge parameter CMA-ES searches over (a coordinate of its genome)."""

    key: str = Field(description="The mergekit parameter, e.g. weight, density, lambda.")
    model: Literal["anchor", "other", "both", "global"] = Field(
        description="Where it goes: the anchor's or the other model's per-model parameters, both models' (one "
        "value), or the method's global parameters."
    )
    low: float = Field(description="Smallest value searched.")
    high: float = Field(description="Largest value searched.")
    start: float | None = Field(None, description="Where the search starts; default: the middle of [low, high].")

    @model_validator(mode="after")
    def _check_range(self) -> CmaGene:
        if not self.low < self.high:
            raise ValueError(f"gene {self.key}: low ({self.low}) must be below high ({self.high})")
        if self.start is not None and not self.low <= self.start <= self.high:
            raise ValueError(f"gene {self.key}: start {self.start} is outside [{self.low}, {self.high}]")
        return self


def _default_cma_genes() -> list[CmaGene]:
    return [
        CmaGene(key="weight", model="anchor", low=0.0, high=1.5, start=1.0),
        CmaGene(key="weight", model="other", low=0.0, high=1.5, start=1.0),
        CmaGene(key="density", model="both", low=0.1, high=1.0, start=0.5),
    ]


class CmaSearchSpec(Frozen):
    """CMA-ES over a merge's continuous parameters, every candidate a real mergekit merge scored by lm-eval on the
    pair's search items (rule cma_search; simmerge.merges.cma), compared with the selection methods (rule search)."""

    enabled: bool = Field(
        False,
        description="Run it on every expert pair (off by default: it costs budget merges and scorings per pair, "
        "about as much as the grid itself on the default catalog).",
    )
    method: str = Field("ties", description="mergekit merge_method of every candidate.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"normalize": False}, description="Fixed global mergekit parameters."
    )
    model_parameters: dict[str, Any] = Field(
        default_factory=dict, description="Fixed per-model parameters given to both models."
    )
    genes: list[CmaGene] = Field(
        default_factory=_default_cma_genes,
        min_length=2,
        description="The continuous parameters searched, at least two (CMA-ES; default: TIES with each model's "
        "weight in [0, 1.5] and one density in [0.1, 1], as mergekit-evolve's genome has a weight and a density per "
        "model).",
    )
    budget: int = Field(16, ge=2, description="Evaluations (merges scored on the search items) per pair, at most.")
    popsize: int = Field(4, ge=2, description="CMA-ES population per generation (a generation runs only whole).")
    sigma0: float = Field(0.3, gt=0, le=1, description="Initial step size, as a fraction of each gene's range.")
    items: int | None = Field(
        None, ge=1, description="Search items each evaluation scores (the first of the pair's search half); null: all."
    )

    @model_validator(mode="after")
    def _check_genes(self) -> CmaSearchSpec:
        seen = [(gene.key, gene.model) for gene in self.genes]
        repeated = sorted({f"{key} ({model})" for key, model in seen if seen.count((key, model)) > 1})
        if repeated:
            raise ValueError(f"genes: {', '.join(repeated)} listed twice; give each parameter once")
        if self.popsize > self.budget:
            raise ValueError(f"popsize {self.popsize} exceeds budget {self.budget}: not one generation would run")
        return self


class PredictorSpec(Frozen):
    """The SimMerge predictor and its evaluation (simmerge.evaluate.predictor, simmerge.evaluate.compare)."""

    families: list[PredictorFamily] = Field(
        default_factory=lambda: list(PREDICTOR_FAMILIES),
        min_length=1,
        description="Model families grouped cross-validation chooses from.",
    )
    seed: int | None = Field(None, description="Seed of the models and the bootstrap; default: the run seed.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples (over pairs) for the 95% intervals.")
    hold_out_together: list[list[Slug]] = Field(
        default_factory=list,
        description="Groups of experts that the comparison holds out together (near-duplicates), on top of "
        "group_same_home_tasks.",
    )
    group_same_home_tasks: bool = Field(
        True,
        description="Experts that share a home task are near-duplicates: the comparison holds them out together.",
    )
    target: Literal["metric", "likelihood"] = Field(
        "metric",
        description="What SimMerge learns and is scored on: the task metric over the better parent's (metric), or "
        "the gold answer's per-item probability over the better parent's (likelihood: multiple choice and one-pass "
        "exact match). The comparison also reports the other target.",
    )
    transfer_from: list[str] = Field(
        default_factory=list,
        description="Finished runs (results/<run_name> folders, or their exports by simmerge export; relative to "
        "the workflow directory) whose fitted predictor is applied unchanged to this run's pairs (rule transfer; "
        "simmerge transfer).",
    )
    transfer_features: Literal["all", "dimensionless", "ranked"] = Field(
        "all",
        description="Rule transfer: the source run's fitted predictor (all); its family fitted again on the "
        "source's labels without the KL features in nats (dimensionless); or fitted and applied on each run's "
        "within-run percentile ranks of every feature (ranked). simmerge.features.scale, docs/feature-scale.md.",
    )
    methods: list[SelectionMethodSpec] = Field(
        default_factory=_default_methods,
        description="Selection methods compared on the held-out checkpoint folds, each pair's choices scored on "
        "items no method searched on (rule search): SimMerge, SimMerge + k, successive halving at four budgets, "
        "the label-free choice (needs merges.parent_drift), the best fixed policy, random choice and the oracle by "
        "default; a list here replaces them.",
    )
    cma_search: CmaSearchSpec = Field(
        default_factory=CmaSearchSpec,
        description="CMA-ES over a merge's continuous parameters with real merges (rule cma_search), reported beside "
        "the selection methods at each generation's budget.",
    )


MAX_MULTIWAY = 5


class MultiwaySetSpec(Frozen):
    """One candidate set of a multi-way merge (simmerge.multiway.planning)."""

    name: Slug = Field(description="Names the set's outputs: multiway/<name>/.")
    checkpoints: list[Slug] = Field(
        min_length=2, max_length=MAX_MULTIWAY, description="Candidate experts (2 to 5) the merge may use."
    )
    max_size: int | None = Field(
        None, ge=2, le=MAX_MULTIWAY, description="Most experts in the merge (k); default: all candidates."
    )
    tasks: list[Slug] | None = Field(
        None, description="Target tasks the merge is planned for and scored on; default: the candidates' home tasks."
    )


class MultiwaySpec(Frozen):
    """Multi-way merges planned from 2-way predictions, executed, and compared with multi-model baselines."""

    sets: list[MultiwaySetSpec] = Field(default_factory=list, description="Candidate sets (none: stage off).")
    beam_width: int = Field(1, ge=1, description="Chains kept per planning step (1: greedy).")
    min_gain: float = Field(
        0.0, ge=0, description="An addition must raise the predicted target score by more than this."
    )
    all_at_once: list[Slug] | None = Field(
        None,
        description="Operators applied to all candidates in one merge (null: every symmetric operator); "
        "model_stock is added for sets of three or more.",
    )
    oracle_max_candidates: int = Field(
        3, ge=0, le=MAX_MULTIWAY, description="Run the exhaustive oracle (subsets × orders) on sets this small."
    )
    oracle_operators: list[Slug] | None = Field(
        None, description="Operators tried at every step of the oracle's chains (null: the best fixed operator)."
    )
    seed: int | None = Field(None, description="Seed of the random order / random subset baselines; default: run seed.")
    keep_merged: bool = Field(False, description="Keep merged checkpoints in multiway/<set>/nodes/ (else temporary).")


class BanditArrivalSpec(Frozen):
    """Checkpoints, tasks and operators that join the bandit's stream part-way through."""

    at: float = Field(ge=0, lt=1, description="When they arrive, as a fraction of the rounds.")
    checkpoints: list[Slug] = Field(default_factory=list, description="Experts whose pairs become requests.")
    tasks: list[Slug] = Field(default_factory=list, description="Tasks that become requests.")
    operators: list[Slug] = Field(default_factory=list, description="Operators that become arms.")


class BanditSpec(Frozen):
    """The contextual bandit (simmerge.online.bandit): replay on the labels and the live loop."""

    policy: Literal["linucb", "lints"] = Field("linucb", description="MABWiser learning policy of the bandit.")
    alpha: float = Field(1.0, gt=0, description="Exploration of LinUCB / LinTS.")
    epsilon: float = Field(0.1, ge=0, le=1, description="Exploration of the epsilon-greedy baseline.")
    rounds: int = Field(300, ge=1, description="Merge requests per replay.")
    seeds: int = Field(5, ge=1, description="Replays, with seeds seed, seed+1, ...")
    offline_family: PredictorFamily = Field(
        "per_operator_ridge", description="Family of the frozen offline predictor baseline."
    )
    arrivals: list[BanditArrivalSpec] = Field(
        default_factory=list, description="What arrives when; everything else is there from round 0."
    )
    seed: int | None = Field(None, description="Seed of the replays and the live loop; default: the run seed.")


class RunConfig(Frozen):
    """The whole workflow configuration (``config/config.yaml``)."""

    run_name: Slug = Field(description="Outputs go to results/<run_name>/.")
    seed: int = Field(0, description="Master seed; every other seed defaults to it.")
    tasks: dict[Slug, TaskSpec] = Field(
        min_length=1,
        description="The tasks: built-in skills (kind builtin, the default), lm-eval registry tasks (lmeval) or "
        "the user's own task YAMLs (yaml).",
    )
    catalog: CatalogSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    merges: MergeSpec = Field(default_factory=MergeSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    predictor: PredictorSpec = Field(default_factory=PredictorSpec)
    multiway: MultiwaySpec = Field(default_factory=MultiwaySpec)
    bandit: BanditSpec = Field(default_factory=BanditSpec)

    def own_or_run_seed(self, own: int | None) -> int:
        """The seed of one part of the run: its own ``seed`` when the config sets one, else the run's ``seed``.

        Every ``seed: null`` of the config (merges, predictor, multiway, bandit, a checkpoint's source) resolves
        through here.
        """
        return self.seed if own is None else own


# What to write instead of a name that is not a slug; names become file and folder names under results/.
SLUG_FIX = (
    "use a slug: letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no leading '.'), "
    "since the name becomes a path under results/"
)


def format_validation_error(error: ValidationError, where: str) -> str:
    """One line per problem: the dotted field path, what is wrong, the offending value, and for a name the fix."""
    lines = [f"invalid configuration in {where}:"]
    for item in error.errors():
        loc = list(item["loc"])
        if len(loc) > 2 and loc[0] == "tasks" and loc[2] in TASK_KINDS:
            del loc[2]  # the kind pydantic matched the entry to: the entry's own field path says more
        field = ".".join(str(part) for part in loc) or "(top level)"
        value = item.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
        fix = ""
        if item["type"] == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") == SLUG_PATTERN:
            fix = f"; {SLUG_FIX}"
        lines.append(f"  - {field}: {item['msg']}{shown}{fix}")
    return "\n".join(lines)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML parse error as one line: what is wrong and where (1-based line and column)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(error).replace("\n", " ")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config file (YAML or JSON) as Snakemake would, with one-line errors naming the file.

    Snakemake's own reader says only "Config file is not valid JSON or YAML" for a syntax error, and a
    ``--configfile`` that does not exist gives a traceback; this reader names the file, line and column.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, is not valid YAML, or does not hold a mapping of config keys.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; give the path of an existing YAML file") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give the path of a YAML file in it") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(error)}") from None
    if not isinstance(raw, dict):
        held = "nothing" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"config file {path} holds {held}, not a mapping of config keys (run_name, tasks, ...)")
    return raw


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turn a :class:`ConfigError` raised in the block into an exit with its message alone: ``error: ...``.

    For the workflow's parse-time checks: Snakemake prints an exception raised while it parses the Snakefile with
    the frames it passed through, which only hide the message; ``simmerge check`` prints the same ``error:`` line.
    """
    try:
        yield
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None


def parse_config(raw: dict[str, Any], where: str = "the config") -> RunConfig:
    """Validate a raw config mapping; raise :class:`ConfigError` listing every bad field."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, where)) from None


def json_schema() -> dict[str, Any]:
    """The JSON schema of :class:`RunConfig`, as committed in ``config/schema/config.schema.yaml``."""
    schema = RunConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = "SimMerge-bench workflow configuration (generated by `simmerge schema`)."
    return schema


def resolve_path(path: str, relative_to: str | Path) -> Path:
    """An absolute path for a config path; relative paths are taken from the workflow directory."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (Path(relative_to) / candidate).resolve()
