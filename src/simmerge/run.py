"""The validated run: the config with its catalog, operators and multi-way sets, checked before any job runs.

:func:`load` turns the config into a :class:`Catalog` and runs every check that needs no model file (names,
parents, tasks, paths, operators, multi-way sets, bandit arrivals). :func:`check` adds the JSON schema and the
task YAMLs: it is every check the workflow runs when Snakemake parses it, and ``simmerge check`` runs the same
function, so the two accept and refuse the same configs with the same message. It sits above the stages (it reads
the operator registry and the task YAMLs of ``simmerge.merges``), beside the CLI.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from simmerge.catalog import harness
from simmerge.catalog.lock import lock_file_of, locked_commits
from simmerge.core.config import (
    REPLICATE_SEED_STRIDE,
    CheckpointSpec,
    ConfigError,
    RunConfig,
    json_schema,
    parse_config,
    read_config_file,
    resolve_path,
)
from simmerge.core.export import export_problem
from simmerge.core.layout import RunLayout
from simmerge.merges.operators import Operator, load_operators
from simmerge.merges.tasks import task_definition_files

# The lm-eval task YAMLs of the built-in skills, relative to the workflow directory.
TASK_DIR = "config/tasks"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MultiwaySet:
    """A multi-way candidate set with its defaults filled in: experts, largest merge size k, target tasks."""

    name: str
    checkpoints: tuple[str, ...]
    max_size: int
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """A validated run configuration with the catalog's derived views.

    Attributes
    ----------
    config : RunConfig
        The parsed configuration.
    workdir : Path
        Directory that relative paths in the config are taken from (the workflow directory).
    """

    config: RunConfig
    workdir: Path
    operators: dict[str, Operator] = field(default_factory=dict)

    @property
    def base(self) -> CheckpointSpec:
        return self.config.catalog.base

    @property
    def experts(self) -> tuple[CheckpointSpec, ...]:
        return tuple(self.config.catalog.experts)

    @property
    def entries(self) -> tuple[CheckpointSpec, ...]:
        return (self.base, *self.experts)

    @property
    def names(self) -> list[str]:
        """Every checkpoint, base first, in config order."""
        return [entry.name for entry in self.entries]

    @property
    def expert_names(self) -> list[str]:
        return [entry.name for entry in self.experts]

    @property
    def ordered_pairs(self) -> list[tuple[str, str]]:
        """Every ordered pair of distinct experts, (a, b) with a != b, in config order."""
        return [(a, b) for a in self.expert_names for b in self.expert_names if a != b]

    @property
    def unordered_pairs(self) -> list[tuple[str, str]]:
        """Every pair of distinct experts once, its names sorted (the methods comparison's units), in config order."""
        return list(dict.fromkeys(tuple(sorted(pair)) for pair in self.ordered_pairs))

    @property
    def tasks(self) -> list[str]:
        return list(self.config.tasks)

    def tasks_of_kind(self, *kinds: str) -> list[str]:
        """The tasks of these kinds (``builtin``, ``lmeval``, ``yaml``), in config order."""
        return [name for name, spec in self.config.tasks.items() if spec.kind in kinds]

    def trained_on(self, task: str) -> list[str]:
        """Catalog entries whose weights are trained on the task: finetune sources and a pre-trained tiny model."""
        return [
            entry.name
            for entry in self.entries
            if task in entry.tasks
            and (entry.source.kind == "finetune" or (entry.source.kind == "tiny" and entry.source.pretrain))
        ]

    def get(self, name: str) -> CheckpointSpec:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise KeyError(f"no checkpoint named {name!r} in the catalog; known: {', '.join(self.names)}")

    def names_by_source(self, kind: str) -> list[str]:
        return [entry.name for entry in self.entries if entry.source.kind == kind]

    def parent_of(self, name: str) -> str | None:
        """The checkpoint a finetune entry starts from (the base unless configured), else None."""
        source = self.get(name).source
        if source.kind != "finetune":
            return None
        return source.parent or self.base.name

    def label_grid(self) -> list[dict[str, Any]]:
        """Which merge record serves each (ordered pair, operator) of the grid, in label order: ``{"a", "b",
        "operator", "merged"}`` (rule ``labels``; :func:`simmerge.evaluate.labels.labels_table`)."""
        return [
            {"a": a, "b": b, "operator": name, "merged": list(operator.pair_to_merge(a, b))}
            for a, b in self.ordered_pairs
            for name, operator in self.operators.items()
        ]

    def merge_tasks(self, a: str, b: str) -> list[str]:
        """Tasks a merge of a and b is scored on: the union of their home tasks (or all, per config), in task order."""
        if self.config.merges.tasks == "all":
            return self.tasks
        home = set(self.get(a).tasks) | set(self.get(b).tasks)
        return [task for task in self.tasks if task in home]

    @property
    def merge_seed(self) -> int:
        return self.config.own_or_run_seed(self.config.merges.seed)

    @property
    def merge_seeds(self) -> list[int]:
        """Seeds of a randomised operator's repeated merges: merge_seed, merge_seed + 1, ..."""
        return [self.merge_seed + offset for offset in range(self.config.merges.repeats)]

    @property
    def repeat_pairs(self) -> list[tuple[str, str]]:
        """The :attr:`unordered_pairs` whose randomised operators get every seed of :attr:`merge_seeds`: all of
        them, or ``merges.repeat_pairs`` of them ranked by a hash of the merge seed and the two names, so adding an
        expert keeps the pairs chosen before (or takes one of its own in their place).
        """
        pairs = self.unordered_pairs
        wanted = self.config.merges.repeat_pairs
        if wanted is None or wanted >= len(pairs):
            return pairs
        ranked = sorted(
            pairs, key=lambda pair: hashlib.sha256(f"{self.merge_seed}|{'|'.join(pair)}".encode()).hexdigest()
        )
        chosen = set(ranked[:wanted])
        return [pair for pair in pairs if pair in chosen]

    def merge_seeds_of(self, a: str, b: str) -> list[int]:
        """Seeds of a randomised operator's merges of a and b (either order): all of :attr:`merge_seeds` on a
        :attr:`repeat_pairs` pair, the first one elsewhere."""
        return self.merge_seeds if tuple(sorted((a, b))) in self.repeat_pairs else self.merge_seeds[:1]

    @property
    def multiway_sets(self) -> dict[str, MultiwaySet]:
        """The multi-way candidate sets with their defaults resolved, by name."""
        resolved = {}
        for entry in self.config.multiway.sets:
            home = {task for name in entry.checkpoints for task in self.get(name).tasks}
            tasks = entry.tasks if entry.tasks is not None else [t for t in self.tasks if t in home]
            size = entry.max_size if entry.max_size is not None else len(entry.checkpoints)
            resolved[entry.name] = MultiwaySet(entry.name, tuple(entry.checkpoints), size, tuple(tasks))
        return resolved

    @property
    def bandit_seed(self) -> int:
        return self.config.own_or_run_seed(self.config.bandit.seed)

    @property
    def multiway_seed(self) -> int:
        return self.config.own_or_run_seed(self.config.multiway.seed)

    @property
    def predictor_seed(self) -> int:
        return self.config.own_or_run_seed(self.config.predictor.seed)

    @property
    def transfer_sources(self) -> dict[str, Path]:
        """The runs of ``predictor.transfer_from`` by name (their folder's name) → their folder."""
        return {Path(path).name: resolve_path(path, self.workdir) for path in self.config.predictor.transfer_from}

    @property
    def holdout_groups(self) -> dict[str, str]:
        """Each expert's hold-out group in the comparison: experts that leave a training fold together.

        Experts listed together in ``predictor.hold_out_together``, and (with ``predictor.group_same_home_tasks``)
        experts that share a home task, are near-duplicates: a model trained with one of them has seen the
        other's pairs. Groups are the connected components of those links, named by their members in catalog
        order joined with ``+`` (a lone expert is its own group).
        """
        spec = self.config.predictor
        names = self.expert_names
        group = {name: name for name in names}

        def root(name: str) -> str:
            while group[name] != name:
                name = group[name]
            return name

        links = [members for members in spec.hold_out_together if all(m in group for m in members)]
        if spec.group_same_home_tasks:
            for task in self.tasks:
                links.append([expert.name for expert in self.experts if task in expert.tasks])
        for members in links:
            for other in members[1:]:
                first, second = sorted((root(members[0]), root(other)), key=names.index)
                group[second] = first
        members_of: dict[str, list[str]] = {}
        for name in names:
            members_of.setdefault(root(name), []).append(name)
        return {name: "+".join(members_of[root(name)]) for name in names}

    def seed_of(self, name: str) -> int:
        """The seed a checkpoint's builder uses: its own if configured, else the run seed.

        An expert's seed is shifted by ``catalog.replicate * REPLICATE_SEED_STRIDE``, so that a replicate run
        retrains the same experts with other seeds (example order, dropout, initialisation); the base keeps its
        seed, so every replicate starts from the same base.
        """
        source = self.get(name).source
        own = getattr(source, "seed", None)
        if own is None and source.kind == "finetune":
            own = source.train.seed
        seed = self.config.own_or_run_seed(own)
        if name != self.base.name:
            seed += self.config.catalog.replicate * REPLICATE_SEED_STRIDE
        return seed


def load(raw: dict[str, Any], workdir: str | Path = ".", where: str = "the config") -> Catalog:
    """Validate a raw config and its catalog before any job is scheduled.

    Parameters
    ----------
    raw : dict
        The config mapping (as Snakemake loaded it).
    workdir : str or Path
        Directory that relative ``local`` and ``gguf`` paths are resolved from.
    where : str
        How to name the config in messages (e.g. its file name).

    Raises
    ------
    ConfigError
        With one line per problem, naming the catalog entry and the field to fix.
    """
    config = parse_config(raw, where)
    try:
        operators = load_operators(config.merges.operators)
    except ConfigError as error:
        raise ConfigError(f"{error} (in {where}, merges.operators)") from None
    catalog = Catalog(config=config, workdir=Path(workdir).resolve(), operators=operators)
    problems = _catalog_problems(catalog)
    if problems:
        raise ConfigError(f"invalid catalog in {where}:\n" + "\n".join(f"  - {p}" for p in problems))
    return catalog


@dataclass(frozen=True)
class CheckedRun:
    """A config that passed every parse-time check: its catalog and, per task, the files that define its scoring."""

    catalog: Catalog
    task_files: dict[str, list[Path]]
    commits: dict[str, str] = field(default_factory=dict)
    dataset_commits: dict[str, dict[str, str]] = field(default_factory=dict)  # task → Hub dataset → commit


def check(
    raw: dict[str, Any],
    workdir: str | Path = ".",
    where: str = "the config",
    task_dir: str | Path = TASK_DIR,
    lock_file: str | Path | None = None,
) -> CheckedRun:
    """Every check the workflow runs when Snakemake parses it; ``simmerge check`` runs this same function.

    In order: the pydantic models (each bad field named with its value), the catalog, operator, multi-way and
    bandit checks of :func:`load`, the committed JSON schema (the contract; the models already imply it), and the
    task YAML of every task (found, valid YAML, scorable, its includes and ``!function`` modules present).

    Parameters
    ----------
    raw : dict
        The config mapping (:func:`read_config_file`, or Snakemake's ``config``).
    workdir : str or Path
        The workflow directory: relative catalog paths are resolved from it.
    where : str
        How to name the config in messages (its file name).
    task_dir : str or Path
        Folder of the task YAMLs, as named in messages.
    lock_file : str or Path, optional
        The config's lock file (:func:`simmerge.catalog.lock.lock_file_of`), which locks the branches and tags of
        ``hf`` checkpoints and Hub datasets to commits; a missing file locks nothing.

    Returns
    -------
    CheckedRun

    Raises
    ------
    ConfigError
        The first failing check's message, naming the file or field and the fix.
    """
    catalog = load(raw, workdir=workdir, where=where)
    _check_schema(raw, where)
    try:
        files = {task: task_definition_files(task_dir, [task]) for task in catalog.tasks_of_kind("builtin")}
    except ConfigError:
        raise  # a task YAML's own problem; the message names the file
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"{error} (in {where}, tasks)") from None
    problems = []
    for task in catalog.tasks_of_kind("lmeval", "yaml"):
        spec = catalog.config.tasks[task]
        problems += harness.task_problems(task, spec, catalog.workdir)
        files[task] = harness.definition_files(spec, catalog.workdir)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    locked = locked_commits(catalog.config, lock_file, where, catalog.workdir)
    return CheckedRun(
        catalog=catalog,
        task_files={task: files[task] for task in catalog.tasks},
        commits=locked.checkpoints,
        dataset_commits=locked.datasets,
    )


def check_file(path: str | Path, workdir: str | Path = ".", task_dir: str | Path = TASK_DIR) -> CheckedRun:
    """:func:`check` on a config file, read with :func:`read_config_file` (messages name its line and column), with
    the lock file beside it."""
    return check(
        read_config_file(path), workdir=workdir, where=str(path), task_dir=task_dir, lock_file=lock_file_of(path)
    )


def _check_schema(raw: dict[str, Any], where: str) -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
        raise ConfigError(f"invalid configuration in {where} (JSON schema):\n" + "\n".join(lines))


def _catalog_problems(catalog: Catalog) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for entry in catalog.entries:
        if entry.name in seen:
            problems.append(f"checkpoint {entry.name!r}: name is used twice; every catalog name must be unique")
        seen.add(entry.name)
    known_tasks = set(catalog.tasks)
    base = catalog.base
    if base.source.kind == "finetune":
        problems.append(f"base {base.name!r}: source.kind 'finetune' needs a parent; the base must be pretrained")
    for entry in catalog.entries:
        where = f"checkpoint {entry.name!r}"
        for task in entry.tasks:
            if task not in known_tasks:
                problems.append(
                    f"{where}: tasks lists {task!r}, which is not in `tasks` (known: {', '.join(known_tasks)})"
                )
        source = entry.source
        if source.kind == "finetune":
            if not entry.tasks:
                problems.append(f"{where}: a finetune source trains on the entry's `tasks`; list at least one")
            parent = source.parent or base.name
            if parent == entry.name:
                problems.append(f"{where}: source.parent names the checkpoint itself")
            elif parent not in seen:
                problems.append(f"{where}: source.parent {parent!r} is not a catalog entry")
        if source.kind == "local":
            path = resolve_path(source.path, catalog.workdir)
            if not path.is_dir():
                problems.append(f"{where}: source.path {str(path)!r} is not a directory; fix the path")
        if source.kind == "gguf" and source.path is not None:
            path = resolve_path(source.path, catalog.workdir)
            if not path.is_file():
                problems.append(f"{where}: source.path {str(path)!r} does not exist; fix the path")
    problems.extend(_parent_cycles(catalog))
    problems.extend(_multiway_problems(catalog))
    problems.extend(_transfer_problems(catalog))
    problems.extend(_method_problems(catalog))
    problems.extend(_cma_problems(catalog))
    problems.extend(_bandit_problems(catalog))
    for index, members in enumerate(catalog.config.predictor.hold_out_together):
        unknown = [name for name in members if name not in catalog.expert_names]
        if unknown:
            problems.append(
                f"predictor.hold_out_together[{index}]: {unknown} are not experts of the catalog "
                f"(known: {', '.join(catalog.expert_names)})"
            )
    return problems


def _bandit_problems(catalog: Catalog) -> list[str]:
    known = {"checkpoints": catalog.expert_names, "tasks": catalog.tasks, "operators": list(catalog.operators)}
    problems = []
    for index, arrival in enumerate(catalog.config.bandit.arrivals):
        for kind, names in known.items():
            unknown = [name for name in getattr(arrival, kind) if name not in names]
            if unknown:
                problems.append(
                    f"bandit.arrivals[{index}].{kind}: {unknown} are not {kind} of the run (known: {', '.join(names)})"
                )
    return problems


def _transfer_problems(catalog: Catalog) -> list[str]:
    """Every ``predictor.transfer_from`` run must be another finished run with a fitted predictor and labels."""
    problems = []
    paths = catalog.config.predictor.transfer_from
    if len({Path(path).name for path in paths}) != len(paths):
        problems.append("predictor.transfer_from: two runs share a folder name; each names its transfer/ outputs")
    own = resolve_path(Path("results") / catalog.config.run_name, catalog.workdir)
    for folder in catalog.transfer_sources.values():
        layout = RunLayout(folder)
        if folder == own:
            problems.append(f"predictor.transfer_from: {folder} is this run; give another run's folder")
            continue
        needed = (layout.predictor_model, layout.predictor_cv, layout.labels_parquet)
        missing = [p.relative_to(folder).as_posix() for p in needed]
        missing = [name for name in missing if not (folder / name).is_file()]
        if missing:
            problems.append(
                f"predictor.transfer_from: {folder} has no {', '.join(missing)}; finish that run first "
                "(`snakemake all_predictor --configfile <its config>`)"
            )
        problem = export_problem(folder)
        if problem:
            problems.append(f"predictor.transfer_from: {problem}")
    return problems


def _method_problems(catalog: Catalog) -> list[str]:
    """Every ``predictor.methods`` entry must name a registered selection method that takes its params."""
    from simmerge.evaluate.methods import method_problems  # deferred: imports the registered methods' modules

    methods = catalog.config.predictor.methods
    problems = method_problems([spec.model_dump() for spec in methods])
    if not catalog.config.merges.parent_drift and any(spec.name == "label_free" for spec in methods):
        problems.append(
            "predictor.methods: label_free chooses by the merges' parent drift, which merges.parent_drift: false "
            "does not measure; set it to true or leave label_free out of predictor.methods"
        )
    return problems


def _cma_problems(catalog: Catalog) -> list[str]:
    """A CMA-ES search's every merge must be one mergekit takes: its operator at each corner of the genes' box."""
    spec = catalog.config.predictor.cma_search
    if not spec.enabled:
        return []
    from simmerge.merges.cma import Genome  # deferred: imports mergekit

    genome = Genome(spec.model_dump(include={"method", "parameters", "model_parameters", "genes"}))
    for corner in ([0.0] * len(spec.genes), [1.0] * len(spec.genes)):
        try:
            genome.operator(corner)
        except ValueError as error:
            detail = str(error).splitlines()
            return [
                f"predictor.cma_search: at {genome.parameters(corner)} mergekit's {spec.method!r} is refused: "
                f"{' '.join(line.strip() for line in detail)}; narrow the genes' [low, high] or change the method"
            ]
    return []


def _multiway_problems(catalog: Catalog) -> list[str]:
    spec = catalog.config.multiway
    problems: list[str] = []
    experts, tasks = set(catalog.expert_names), set(catalog.tasks)
    names = [entry.name for entry in spec.sets]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"multiway.sets: the name {name!r} is used twice; give every set its own name")
    for entry in spec.sets:
        where = f"multiway set {entry.name!r}"
        unknown = [name for name in entry.checkpoints if name not in experts]
        if unknown:
            problems.append(
                f"{where}: checkpoints {unknown} are not experts of the catalog (experts: {', '.join(sorted(experts))})"
            )
        if len(set(entry.checkpoints)) != len(entry.checkpoints):
            problems.append(f"{where}: checkpoints lists an expert twice")
        if entry.max_size is not None and entry.max_size > len(entry.checkpoints):
            problems.append(
                f"{where}: max_size {entry.max_size} is more than its {len(entry.checkpoints)} checkpoints; lower it"
            )
        bad_tasks = [task for task in entry.tasks or [] if task not in tasks]
        if bad_tasks:
            problems.append(f"{where}: tasks {bad_tasks} are not in `tasks` (known: {', '.join(catalog.tasks)})")
        if entry.tasks is None and not unknown and not any(catalog.get(n).tasks for n in entry.checkpoints):
            problems.append(f"{where}: no candidate has a home task; list the target `tasks`")
    for field_name in ("all_at_once", "oracle_operators"):
        for name in getattr(spec, field_name) or []:
            operator = catalog.operators.get(name)
            if operator is None:
                problems.append(
                    f"multiway.{field_name}: {name!r} is not an operator of merges.operators "
                    f"(known: {', '.join(catalog.operators)})"
                )
            elif field_name == "all_at_once" and operator.order_sensitive:
                problems.append(
                    f"multiway.all_at_once: {name!r} is order-sensitive ({operator.method}); only symmetric "
                    "operators merge all candidates in one step"
                )
            elif field_name == "all_at_once" and operator.mixup_alpha is not None:
                problems.append(
                    f"multiway.all_at_once: {name!r} draws a pair's ratio (Mixup); it merges pairs, not a set"
                )
    return problems


def _parent_cycles(catalog: Catalog) -> list[str]:
    names = set(catalog.names)
    for entry in catalog.experts:
        chain = [entry.name]
        parent = catalog.parent_of(entry.name) if entry.name in names else None
        while parent is not None and parent in names:
            if parent in chain:
                return [f"checkpoint {entry.name!r}: source.parent forms a cycle: {' -> '.join([*chain, parent])}"]
            chain.append(parent)
            parent = catalog.parent_of(parent)
    return []
