# Config validation, run constants and every helper the rules use. Parse time reads the config only:
# no model is loaded and results/ is never globbed here.
#
# Re-runs: Snakemake re-runs a job whose params changed, so a params function returns only its job's slice of the
# config. Runtime settings, which change how a job runs but never what it writes, are in no params at all: the
# lm-eval batch size and the scratch dir (simmerge.core.runtime.RUNTIME_KEYS) are read by the scripts from the
# whole config through simmerge.core.runtime.runtime_settings(snakemake.config), and threads come from Snakemake
# (`threads:`, --set-threads, profiles). Changing one of them never re-runs a job.

import json
from pathlib import Path

import simmerge.catalog.harness
import simmerge.catalog.lock
import simmerge.catalog.sizing
import simmerge.core.config
import simmerge.core.layout
import simmerge.core.runtime
import simmerge.merges.operators
import simmerge.merges.tasks
import simmerge.run


def config_name():
    """The config file(s) this run reads, named as given (relative to the working directory), as `simmerge check`
    names its argument; Snakemake keeps a --configfile as an absolute path."""
    files = [Path(f) for f in workflow.overwrite_configfiles or [DEFAULT_CONFIG]]
    return " + ".join(
        str(f.relative_to(Path.cwd()) if f.is_relative_to(Path.cwd()) else f)
        for f in files
    )


# Every parse-time check is simmerge.run.check, which `simmerge check CONFIG` runs too, so the two accept and
# refuse the same configs with the same `error:` message. The pydantic models check first: inside a checkpoint
# source (a oneOf of kinds) they name the exact field and value, where the JSON schema
# (config/schema/config.schema.yaml, the contract, checked next) can only say that no kind matched; then the
# task YAMLs, so a malformed one fails here, before any checkpoint is built, not when the first expert is scored.
# Defaults come from the pydantic models; the schema check fills none in (that would mix oneOf branches).
TASK_DIR = simmerge.run.TASK_DIR
# hf branches and tags are fetched at the commits of the lock file beside the (last) config file: `simmerge lock`
LOCK_FILE = simmerge.catalog.lock.lock_file_of(
    (workflow.overwrite_configfiles or [DEFAULT_CONFIG])[-1]
)
with simmerge.core.config.exit_on_config_error():
    # the workflow directory is passed by position: a line starting with `workdir` is a Snakemake keyword
    CHECKED = simmerge.run.check(
        config,
        workflow.basedir,
        where=config_name(),
        task_dir=TASK_DIR,
        lock_file=LOCK_FILE,
    )
CATALOG = CHECKED.catalog
RUN = CATALOG.config
MODELS = CATALOG.names
EXPERTS = CATALOG.expert_names
BASE = CATALOG.base.name
TASKS = CATALOG.tasks
PAIRS = CATALOG.ordered_pairs
# Every path under results/<run_name>/ comes from the run's layout; the rules spell none themselves.
LAYOUT = simmerge.core.layout.RunLayout.of_run(RUN.run_name)
NEVER = "(?!x)x"


def alternation(names):
    """A wildcard regex matching exactly these names (and nothing when there are none)."""
    return "|".join(names) if names else NEVER


wildcard_constraints:
    model=alternation(MODELS),
    task=alternation(TASKS),
    a=alternation(EXPERTS),
    b=alternation(EXPERTS),
    op=alternation(list(CATALOG.operators)),
    protocol=alternation(list(simmerge.core.config.PROTOCOLS)),
    mwset=alternation(list(CATALOG.multiway_sets)),
    node=r"m[0-9a-f]{12}",


# ---- targets ------------------------------------------------------------------------------------------------


def get_catalog_targets():
    return [LAYOUT.expert_scores_csv]


def get_feature_targets():
    return [LAYOUT.pair_features(a, b) for a, b in PAIRS]


def get_final_targets():
    return (
        get_catalog_targets()
        + get_feature_targets()
        + get_labels_targets()
        + get_predictor_targets()
        + get_compare_targets()
        + get_multiway_targets()
        + get_bandit_targets()
        + get_report_targets()
    )


# ---- catalog stage --------------------------------------------------------------------------------------------


# ---- pre-flight gate ------------------------------------------------------------------------------------------
#
# Checks that can reject the run come before any costly job. Every checkpoint whose source exists before the run
# (hf, gguf, local, tiny) is built and pre-flight checked by its catalog rule in seconds to minutes; rule
# `preflight` waits for all of them and for every task's data, and every scoring, training, probing and merging
# rule takes its record as input, so a bad catalog fails before the first of those jobs starts (with
# --keep-going too: nothing costly is ready while the gate is missing). Fine-tuned experts are the exception:
# their weights exist only after their fine-tune, whose own pre-flight checks them at its end.
#
# The gate is read through ancient(): when a checkpoint or task is added, the gate re-runs (its input set
# changed) but its newer record re-runs no existing job; the new entry's jobs wait for it as before.

CHECKED_FIRST = [name for name in MODELS if CATALOG.get(name).source.kind != "finetune"]
CHECKED_AFTER_FINETUNE = CATALOG.names_by_source("finetune")
TASK_SPLITS = ("train", "eval", "probe")


def get_preflight_input(wildcards):
    return {
        "manifests": [LAYOUT.checkpoint_manifest(name) for name in CHECKED_FIRST],
        "tasks": [
            LAYOUT.task_data(task, split) for task in TASKS for split in TASK_SPLITS
        ],
    }


def preflight_gate():
    """The input that makes a costly job wait for every cheap check (see the top of this section)."""
    return ancient(LAYOUT.preflight)


BUILTIN_TASKS = CATALOG.tasks_of_kind("builtin")
HARNESS_TASKS = CATALOG.tasks_of_kind("lmeval", "yaml")


def get_skill_data_params(wildcards):
    return {"seed": RUN.seed, **RUN.tasks[wildcards.task].model_dump(exclude={"kind"})}


def get_task_data_input(wildcards):
    """The user's task files (a yaml task), and the base when its chat template renders the prompts."""
    inputs = {"definition": [str(path) for path in TASK_FILES[wildcards.task]]}
    if RUN.tasks[wildcards.task].apply_chat_template:
        inputs["base"] = LAYOUT.checkpoint_manifest(BASE)
    return inputs


def get_task_data_params(wildcards):
    """The task's entry and the commits of the Hub datasets it reads (so that moving a dataset's lock re-draws
    the task's data and re-scores it, and nothing else)."""
    task = wildcards.task
    return {
        "seed": RUN.seed,
        "spec": RUN.tasks[task].model_dump(mode="json"),
        "trained_by": CATALOG.trained_on(task),
        "dataset_commits": CHECKED.dataset_commits.get(task, {}),
    }


def get_prefetch_params(wildcards):
    """What `snakemake prefetch` puts into the Hugging Face caches: every hf checkpoint at its commit, every lm-eval
    task that reads its dataset through the cache (not a local dataset_path), its Hub datasets at their commits.
    """
    return {
        "checkpoints": {
            name: {
                **CATALOG.get(name).source.model_dump(),
                "revision": CHECKED.commits[name],
            }
            for name in CATALOG.names_by_source("hf")
        },
        "tasks": {
            task: simmerge.catalog.harness.scoring_spec(
                task,
                RUN.tasks[task],
                workflow.basedir,
                dataset_commits=CHECKED.dataset_commits.get(task, {}),
            )
            for task in HARNESS_TASKS
            if RUN.tasks[task].dataset_path is None
        },
    }


def get_source_params(wildcards):
    """The entry's source; an hf branch or tag as the commit it is locked to, so that moving the lock re-fetches
    the checkpoint and re-runs what is built from it, and nothing else."""
    source = CATALOG.get(wildcards.model).source.model_dump()
    if wildcards.model in CHECKED.commits:
        source["revision"] = CHECKED.commits[wildcards.model]
    return source


def get_base_manifest(wildcards):
    return LAYOUT.checkpoint_manifest(BASE)


def get_checkpoint_input(wildcards):
    """The base manifest (pre-flight reference) for every expert; nothing for the base itself."""
    return {} if wildcards.model == BASE else {"base": LAYOUT.checkpoint_manifest(BASE)}


def get_tiny_checkpoint_input(wildcards):
    return {"train": train_files(CATALOG.get(wildcards.model).tasks)}


def get_tiny_checkpoint_params(wildcards):
    return {
        "source": get_source_params(wildcards),
        "seed": CATALOG.seed_of(wildcards.model),
    }


def train_files(tasks):
    return [LAYOUT.task_data(task, "train") for task in tasks]


def get_finetune_expert_input(wildcards):
    name = wildcards.model
    return {
        "parent": LAYOUT.checkpoint_manifest(CATALOG.parent_of(name)),
        "base": LAYOUT.checkpoint_manifest(BASE),
        "train": train_files(CATALOG.get(name).tasks),
        "preflight": preflight_gate(),
    }


def get_finetune_expert_params(wildcards):
    source = CATALOG.get(wildcards.model).source
    return {**source.train.model_dump(), "seed": CATALOG.seed_of(wildcards.model)}


def sized(rule):
    """`mem_mb` and `disk_mb` of a rule's jobs from the size of the checkpoints they read
    (simmerge.catalog.sizing): the job's input manifests and the base's, whose shape every checkpoint shares.
    Snakemake evaluates them again when the job is ready, once the manifests exist."""

    def resource(key):
        def evaluate(wildcards, input):
            manifests = [
                str(path)
                for path in input
                if str(path).endswith(simmerge.core.layout.MANIFEST_NAME)
            ]
            manifests.append(str(LAYOUT.checkpoint_manifest(BASE)))
            return simmerge.catalog.sizing.job_resources(rule, manifests)[key]

        return evaluate

    sizing = simmerge.catalog.sizing.RULE_SIZING[rule]
    needs_disk = sizing.disk_models or sizing.disk_extra_gb
    return {
        "mem_mb": resource("mem_mb"),
        **({"disk_mb": resource("disk_mb")} if needs_disk else {}),
    }


def get_scoring_params(wildcards):
    """The scoring settings that change scores; the batch size is a runtime setting (see the top of this file)."""
    return RUN.scoring.model_dump(exclude=simmerge.core.runtime.RUNTIME_KEYS["scoring"])


def expert_score_files(name, tasks):
    """The per-task score records of one checkpoint."""
    return [LAYOUT.expert_scores(name, task) for task in tasks]


def task_yamls(tasks):
    """The files that define how these tasks are scored: their YAMLs, included templates, !function modules."""
    return sorted({str(path) for task in tasks for path in TASK_FILES[task]})


def get_checkpoint_manifest(wildcards):
    return LAYOUT.checkpoint_manifest(wildcards.model)


def get_expert_scores_yamls(wildcards):
    return task_yamls([wildcards.task])


def get_home_tasks(wildcards):
    return {entry.name: list(entry.tasks) for entry in CATALOG.entries}


TASK_FILES = CHECKED.task_files


# ---- features stage -------------------------------------------------------------------------------------------


# The sketch's settings are not the probe pass's: changing one re-runs only its own rule.
SKETCH_SETTINGS = {"sketch_size", "top_fraction"}


def get_probe_pass_params(wildcards):
    return RUN.features.model_dump(exclude=SKETCH_SETTINGS)


def get_weight_sketch_params(wildcards):
    return RUN.features.model_dump(include=SKETCH_SETTINGS)


# ---- merges stage ---------------------------------------------------------------------------------------------

OPERATORS = CATALOG.operators
MERGE_JOBS = simmerge.merges.operators.merge_jobs(OPERATORS, PAIRS)


def get_merge_targets():
    return [LAYOUT.merge_record(a, b, op) for op, a, b in MERGE_JOBS]


def get_merge_item_targets():
    return [LAYOUT.merge_items(a, b, op) for op, a, b in MERGE_JOBS]


def get_label_parent_items():
    """Both parents' per-item outcomes on every task their pair is merged on (they normalise the likelihood)."""
    return sorted(
        {
            str(LAYOUT.expert_items(name, task))
            for a, b in PAIRS
            for task in CATALOG.merge_tasks(a, b)
            for name in (a, b)
        }
    )


def get_labels_targets():
    return [LAYOUT.labels_parquet, LAYOUT.ranking_summary]


def get_operator_ranking_params(wildcards):
    return {"operators": list(OPERATORS), "z": RUN.merges.tie_z}


def get_merge_score_input(wildcards):
    """Only the tasks the merge is scored on: a task added to the run re-runs no merge it does not concern."""
    a, b = wildcards.a, wildcards.b
    tasks = CATALOG.merge_tasks(a, b)
    return {
        "a": LAYOUT.checkpoint_manifest(a),
        "b": LAYOUT.checkpoint_manifest(b),
        "base": LAYOUT.checkpoint_manifest(BASE),
        "a_scores": expert_score_files(a, tasks),
        "b_scores": expert_score_files(b, tasks),
        "tasks": task_yamls(tasks),
        "eval": [LAYOUT.task_data(task, "eval") for task in tasks],
        "preflight": preflight_gate(),
        **get_drift_input(a, b, tasks),
    }


def drift_tasks(a, b, tasks):
    """Each parent's home tasks among the merge's: the probes its drift is measured on (merges.parent_drift)."""
    if not RUN.merges.parent_drift:
        return {}
    return {
        name: [task for task in CATALOG.get(name).tasks if task in tasks]
        for name in (a, b)
    }


def get_drift_input(a, b, tasks):
    """The parents' probe parts and the probe files the merge's drift is measured against."""
    homes = drift_tasks(a, b, tasks)
    if not homes:
        return {}
    return {
        "drift_parts": [
            LAYOUT.probe_part(name, task) for name, own in homes.items() for task in own
        ],
        "drift_probes": [
            LAYOUT.task_data(task, "probe")
            for task in dict.fromkeys(t for own in homes.values() for t in own)
        ],
    }


def get_merge_score_params(wildcards):
    """The job's own operator, its seed (only randomised operators use one) and the tasks it is scored on.

    The operator's description is documentation: editing it re-runs no merge.
    """
    operator = OPERATORS[wildcards.op]
    tasks = CATALOG.merge_tasks(wildcards.a, wildcards.b)
    homes = drift_tasks(wildcards.a, wildcards.b, tasks)
    return {
        "operator": operator.model_dump(mode="json", exclude={"description"}),
        "seeds": (
            CATALOG.merge_seeds_of(wildcards.a, wildcards.b)
            if operator.randomised
            else [0]
        ),
        "tasks": tasks,
        "drift": (
            {
                "homes": homes,
                "features": get_probe_pass_params(wildcards),
                "seed": RUN.seed,
            }
            if homes
            else None
        ),
    }


def get_merge_score_output():
    """The record, its per-item outcomes and mergekit YAML; the merged checkpoint too when the config keeps merges."""
    outputs = {
        "record": LAYOUT.merge_record("{a}", "{b}", "{op}"),
        "outcomes": LAYOUT.merge_items("{a}", "{b}", "{op}"),
        "config": LAYOUT.merge_config("{a}", "{b}", "{op}"),
    }
    if RUN.merges.keep_merged:
        outputs["merged"] = directory(LAYOUT.merged_checkpoint("{a}", "{b}", "{op}"))
    return outputs


def get_labels_params(wildcards):
    """Which merge record serves each (ordered pair, operator) of the grid."""
    return CATALOG.label_grid()


# ---- predictor and comparison ---------------------------------------------------------------------------------

PREDICTOR_SEED = CATALOG.predictor_seed


def get_predictor_targets():
    return [LAYOUT.predictor_model, LAYOUT.predictor_cv]


def get_compare_targets():
    return [
        LAYOUT.compare_summary,
        LAYOUT.search_summary,
        *(LAYOUT.transfer_summary(source) for source in CATALOG.transfer_sources),
    ]


def get_transfer_input(wildcards):
    """The source run's fitted predictor and labels (checked at parse time: simmerge.run)."""
    source = simmerge.core.layout.RunLayout(CATALOG.transfer_sources[wildcards.source])
    return {
        "model": source.predictor_model,
        "cv": source.predictor_cv,
        "source_labels": source.labels_parquet,
    }


def get_transfer_params(wildcards):
    return {
        "features": RUN.predictor.transfer_features,
        "z": RUN.merges.tie_z,
        "bootstrap": RUN.predictor.bootstrap,
        "seed": PREDICTOR_SEED,
    }


def get_search_params(wildcards):
    return {
        **get_predictor_params(wildcards),
        "bootstrap": RUN.predictor.bootstrap,
        "methods": [spec.model_dump() for spec in RUN.predictor.methods],
    }


def get_cma_targets():
    """One CMA-ES search per expert pair, when predictor.cma_search is enabled."""
    if not RUN.predictor.cma_search.enabled:
        return []
    return [LAYOUT.cma_record(a, b) for a, b in CATALOG.unordered_pairs]


def get_cma_search_input(wildcards):
    """The pair, the base, the tasks its merges are scored on, and the labels whose item split it searches on."""
    tasks = CATALOG.merge_tasks(wildcards.a, wildcards.b)
    return {
        "a": LAYOUT.checkpoint_manifest(wildcards.a),
        "b": LAYOUT.checkpoint_manifest(wildcards.b),
        "base": LAYOUT.checkpoint_manifest(BASE),
        "tasks": task_yamls(tasks),
        "eval": [LAYOUT.task_data(task, "eval") for task in tasks],
        # ancient: another pair's new labels do not re-run this search; rule search checks that each record was
        # made on the items it compares (simmerge.evaluate.methods.split_digest)
        "labels": ancient(LAYOUT.labels_parquet),
        "outcomes": ancient(LAYOUT.label_items),
        "preflight": preflight_gate(),
    }


def get_cma_search_params(wildcards):
    """The search (genome, budget) and what it shares with the search rule (the item split's seed) and the merges."""
    spec = RUN.predictor.cma_search
    genome_fields = ("method", "parameters", "model_parameters", "genes")
    return {
        "genome": spec.model_dump(include=set(genome_fields)),
        "budget": spec.budget,
        "popsize": spec.popsize,
        "sigma0": spec.sigma0,
        "items": spec.items,
        "split_seed": PREDICTOR_SEED,
        "seed": CATALOG.merge_seed,
        "tasks": CATALOG.merge_tasks(wildcards.a, wildcards.b),
    }


def get_report_targets():
    return [LAYOUT.report, LAYOUT.results_page]


def get_provenance_records():
    """The records besides the merge records whose provenance the report checks: every checkpoint's manifest,
    expert scores and model summary, the pair features, the predictor's CV and the comparisons, all of them
    products of `all` already."""
    return [
        *(LAYOUT.checkpoint_manifest(name) for name in MODELS),
        *(LAYOUT.expert_scores(name, task) for name in MODELS for task in TASKS),
        *(LAYOUT.model_summary(name) for name in MODELS),
        *get_feature_targets(),
        LAYOUT.predictor_cv,
        *(
            LAYOUT.comparison_summary(protocol)
            for protocol in simmerge.core.config.PROTOCOLS
        ),
    ]


def get_predictor_params(wildcards):
    return {
        "families": list(RUN.predictor.families),
        "seed": PREDICTOR_SEED,
        "operators": list(OPERATORS),
        "checkpoint_groups": CATALOG.holdout_groups,
        "target": RUN.predictor.target,
    }


# Permutation repeats of the held-out feature importances: the report shows those of the checkpoint protocol only.
IMPORTANCE_REPEATS = 5


def get_compare_params(wildcards):
    return {
        **get_predictor_params(wildcards),
        "z": RUN.merges.tie_z,
        "bootstrap": RUN.predictor.bootstrap,
        "importance_repeats": (
            IMPORTANCE_REPEATS if wildcards.protocol == "checkpoint" else 0
        ),
    }


def get_report_params(wildcards):
    return {
        "title": f"SimMerge-bench: run {RUN.run_name}",
        "facts": {
            "run": RUN.run_name,
            "seed": RUN.seed,
            "base": BASE,
            "experts (home tasks)": ", ".join(
                f"{e.name} ({', '.join(e.tasks)})" for e in CATALOG.experts
            ),
            "tasks": ", ".join(TASKS),
            "operators": len(OPERATORS),
            "merge seeds of randomised operators": ", ".join(
                map(str, CATALOG.merge_seeds)
            ),
            "pairs merged with every seed": (
                "all"
                if len(CATALOG.repeat_pairs) == len(CATALOG.unordered_pairs)
                else ", ".join(f"{a}|{b}" for a, b in CATALOG.repeat_pairs)
                + " (the others: the first seed, their seed spread pooled per operator over these)"
            ),
        },
        "operators": [op.model_dump(mode="json") for op in OPERATORS.values()],
        "base": BASE,
        "experts": EXPERTS,
        "tasks": TASKS,
        # decision costs read the benchmark files of the run's own jobs there
        "run_dir": str(LAYOUT.root),
        "tie_z": RUN.merges.tie_z,
        "arrivals": [arrival.model_dump() for arrival in RUN.bandit.arrivals],
    }


# ---- multi-way merges -----------------------------------------------------------------------------------------

MULTIWAY_SETS = CATALOG.multiway_sets
MULTIWAY = RUN.multiway


def get_multiway_targets():
    return [LAYOUT.multiway_summary] if MULTIWAY_SETS else []


def get_multiway_tasks(wildcards):
    return list(MULTIWAY_SETS[wildcards.mwset].tasks)


def get_multiway_plan_input(wildcards):
    candidates = MULTIWAY_SETS[wildcards.mwset].checkpoints
    return {
        "predictor": LAYOUT.predictor_model,
        "checkpoints": [
            LAYOUT.checkpoint_manifest(name) for name in (BASE, *candidates)
        ],
        "summaries": [LAYOUT.model_summary(name) for name in (BASE, *candidates)],
        "scores": [
            path
            for name in candidates
            for path in expert_score_files(name, MULTIWAY_SETS[wildcards.mwset].tasks)
        ],
        "probes": [LAYOUT.task_data(task, "probe") for task in TASKS],
        "preflight": preflight_gate(),
    }


def get_multiway_plan_params(wildcards):
    chosen = MULTIWAY_SETS[wildcards.mwset]
    return {
        "candidates": list(chosen.checkpoints),
        "tasks": list(chosen.tasks),
        "max_size": chosen.max_size,
        "base": BASE,
        "probe_tasks": TASKS,
        "beam_width": MULTIWAY.beam_width,
        "min_gain": MULTIWAY.min_gain,
        "operators": [op.model_dump(mode="json") for op in OPERATORS.values()],
        "features": RUN.features.model_dump(),
        "seed": RUN.seed,
        "merge_seed": CATALOG.merge_seed,
    }


def get_multiway_recipes_params(wildcards):
    chosen = MULTIWAY_SETS[wildcards.mwset]
    symmetric = [name for name, op in OPERATORS.items() if not op.order_sensitive]
    return {
        "candidates": list(chosen.checkpoints),
        "max_size": chosen.max_size,
        "operators": [op.model_dump(mode="json") for op in OPERATORS.values()],
        "all_at_once": (
            symmetric if MULTIWAY.all_at_once is None else list(MULTIWAY.all_at_once)
        ),
        "oracle_operators": MULTIWAY.oracle_operators,
        "oracle_max_candidates": MULTIWAY.oracle_max_candidates,
        "seed": CATALOG.multiway_seed,
        "merge_seed": CATALOG.merge_seed,
    }


def multiway_recipes(mwset):
    """recipes.json of a set (a checkpoint: asking for it before it exists schedules it)."""
    with open(checkpoints.multiway_recipes.get(mwset=mwset).output[0]) as handle:
        return json.load(handle)


def get_multiway_node_input(wildcards):
    """The node's inputs: expert checkpoints (manifests) or the merged nodes it is built from."""
    node = multiway_recipes(wildcards.mwset)["nodes"][wildcards.node]
    return {
        "base": LAYOUT.checkpoint_manifest(BASE),
        "inputs": [
            (
                LAYOUT.checkpoint_manifest(name)
                if name in EXPERTS
                else LAYOUT.multiway_node(wildcards.mwset, name)
            )
            for name in node["inputs"]
        ],
        "preflight": preflight_gate(),
    }


def get_multiway_node_params(wildcards):
    return {
        **multiway_recipes(wildcards.mwset)["nodes"][wildcards.node],
        "merge_seed": CATALOG.merge_seed,
    }


def get_multiway_node_output():
    """The merge record; the merged checkpoint is temporary unless multiway.keep_merged."""
    merged = directory(LAYOUT.multiway_node("{mwset}", "{node}"))
    return {
        "record": LAYOUT.multiway_node_record("{mwset}", "{node}"),
        "merged": merged if MULTIWAY.keep_merged else temp(merged),
    }


def get_multiway_score_input(wildcards):
    chosen = MULTIWAY_SETS[wildcards.mwset]
    return {
        "merged": LAYOUT.multiway_node(wildcards.mwset, wildcards.node),
        "record": LAYOUT.multiway_node_record(wildcards.mwset, wildcards.node),
        "scores": [
            path
            for name in chosen.checkpoints
            for path in expert_score_files(name, chosen.tasks)
        ],
        "tasks": task_yamls(chosen.tasks),
        "eval": [LAYOUT.task_data(task, "eval") for task in chosen.tasks],
        "preflight": preflight_gate(),
    }


def multiway_final_nodes(mwset):
    """The final model of every approach of a set: the nodes its summary scores."""
    recipes = multiway_recipes(mwset)
    return sorted({node for nodes in recipes["approaches"].values() for node in nodes})


def multiway_built_nodes(mwset):
    """The nodes merged to build a set's final models: the finals and every merge below them."""
    nodes = multiway_recipes(mwset)["nodes"]
    built, pending = set(), multiway_final_nodes(mwset)
    while pending:
        node = pending.pop()
        if node not in built:
            built.add(node)
            pending.extend(child for child in nodes[node]["inputs"] if child in nodes)
    return sorted(built)


def get_multiway_summary_input(wildcards):
    chosen = MULTIWAY_SETS[wildcards.mwset]
    return {
        "plan": LAYOUT.multiway_plan(wildcards.mwset),
        "recipes": checkpoints.multiway_recipes.get(mwset=wildcards.mwset).output[0],
        "node_scores": [
            LAYOUT.multiway_node_scores(wildcards.mwset, node)
            for node in multiway_final_nodes(wildcards.mwset)
        ],
        "scores": [
            path
            for name in chosen.checkpoints
            for path in expert_score_files(name, chosen.tasks)
        ],
        "node_items": [
            LAYOUT.multiway_node_items(wildcards.mwset, node)
            for node in multiway_final_nodes(wildcards.mwset)
        ],
        "expert_items": [
            LAYOUT.expert_items(name, task)
            for name in chosen.checkpoints
            for task in chosen.tasks
        ],
    }


# ---- bandit -----------------------------------------------------------------------------------------------------


def get_bandit_targets():
    return [LAYOUT.bandit_summary]


def get_bandit_params(wildcards):
    spec = RUN.bandit
    return {
        **spec.model_dump(exclude={"seed", "seeds"}),
        "seeds": [CATALOG.bandit_seed + offset for offset in range(spec.seeds)],
    }


# ---- report -------------------------------------------------------------------------------------------------

# The rule that builds each source kind's checkpoint (its `wildcard_constraints` select that kind's names).
CHECKPOINT_RULES = {
    "gguf": "convert_gguf",
    "tiny": "tiny_checkpoint",
    "hf": "fetch_checkpoint",
    "local": "local_checkpoint",
    "finetune": "finetune_expert",
}


def benchmarks_of(name, *combinator, **wildcards):
    """The benchmark files of a rule's jobs: its own `benchmark:` pattern expanded with their wildcards."""
    return expand(getattr(rules, name).benchmark, *combinator, **wildcards)


def get_job_benchmarks(wildcards):
    """Every job's benchmark file by rule, the multi-way stage's apart (:func:`get_multiway_benchmarks`): exactly
    the jobs `all` runs, so asking for them adds none. A benchmark is one of its job's products, so a missing one
    (e.g. after `snakemake --touch`) re-runs its job.
    """
    firsts, seconds = zip(*PAIRS) if PAIRS else ((), ())
    ops, merge_a, merge_b = zip(*MERGE_JOBS) if MERGE_JOBS else ((), (), ())
    jobs = {
        "skill_data": benchmarks_of("skill_data", task=BUILTIN_TASKS),
        "task_data": benchmarks_of("task_data", task=HARNESS_TASKS),
        **{
            name: benchmarks_of(name, model=CATALOG.names_by_source(kind))
            for kind, name in CHECKPOINT_RULES.items()
        },
        "preflight": benchmarks_of("preflight"),
        "expert_scores": benchmarks_of("expert_scores", model=MODELS, task=TASKS),
        "expert_scores_table": benchmarks_of("expert_scores_table"),
        "probe_pass": benchmarks_of("probe_pass", model=MODELS, task=TASKS),
        "weight_sketch": benchmarks_of("weight_sketch", model=MODELS),
        "probe_features": benchmarks_of("probe_features", model=MODELS),
        "pair_features": benchmarks_of("pair_features", zip, a=firsts, b=seconds),
        "merge_score": benchmarks_of("merge_score", zip, a=merge_a, b=merge_b, op=ops),
        "labels": benchmarks_of("labels"),
        "operator_ranking": benchmarks_of("operator_ranking"),
        "predictor": benchmarks_of("predictor"),
        "compare": benchmarks_of(
            "compare", protocol=list(simmerge.core.config.PROTOCOLS)
        ),
        "compare_summary": benchmarks_of("compare_summary"),
        "search": benchmarks_of("search"),
        "cma_search": [
            LAYOUT.benchmark("cma_search", LAYOUT.pair(a, b))
            for a, b in CATALOG.unordered_pairs
            if RUN.predictor.cma_search.enabled
        ],
        "transfer": benchmarks_of("transfer", source=list(CATALOG.transfer_sources)),
        "bandit_replay": benchmarks_of("bandit_replay"),
        "report": benchmarks_of("report"),
    }
    return {name: files for name, files in jobs.items() if files}


def get_multiway_benchmarks(wildcards):
    """The multi-way jobs' benchmark files by rule: a set's merges and scores are known once its recipes are."""
    if not MULTIWAY_SETS:
        return {}
    sets = list(MULTIWAY_SETS)
    return {
        "multiway_plan": benchmarks_of("multiway_plan", mwset=sets),
        "multiway_recipes": benchmarks_of("multiway_recipes", mwset=sets),
        "multiway_node": [
            path
            for mwset in sets
            for path in benchmarks_of(
                "multiway_node", mwset=mwset, node=multiway_built_nodes(mwset)
            )
        ],
        "multiway_score": [
            path
            for mwset in sets
            for path in benchmarks_of(
                "multiway_score", mwset=mwset, node=multiway_final_nodes(mwset)
            )
        ],
        "multiway_summary": benchmarks_of("multiway_summary", mwset=sets),
        "multiway_table": benchmarks_of("multiway_table"),
    }


def get_results_page_params(wildcards):
    """What was run (the report's facts, with the operators by name), the run folder, and the stage of every rule
    that writes benchmarks: the rules/<stage>.smk file that defines it, in the order they are defined.
    """
    facts = get_report_params(wildcards)["facts"]
    return {
        "run_dir": str(LAYOUT.root),
        "facts": {**facts, "operators": ", ".join(OPERATORS)},
        "tasks": TASKS,
        "stages": {
            defined.name: Path(defined.snakefile).stem
            for defined in workflow.rules
            if defined.benchmark
        },
    }
