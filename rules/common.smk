# Config validation, run constants and every helper the rules use. Parse time reads the config only:
# no model is loaded and results/ is never globbed here.

import json
from pathlib import Path

from snakemake.utils import validate

import simmerge.core.config
import simmerge.merges.operators
import simmerge.merges.tasks
import simmerge.run

# The pydantic models check first: inside a checkpoint source (a oneOf of kinds) they name the exact field and
# value, where the JSON schema can only say that no kind matched. The schema check stays as the contract.
CATALOG = simmerge.run.load(
    config, workdir=workflow.basedir, where="the workflow config"
)
# Defaults come from the pydantic models (simmerge.core.config); filling them in here would mix oneOf branches.
validate(config, schema="../config/schema/config.schema.yaml", set_default=False)
RUN = CATALOG.config
MODELS = CATALOG.names
EXPERTS = CATALOG.expert_names
BASE = CATALOG.base.name
TASKS = CATALOG.tasks
PAIRS = CATALOG.ordered_pairs
RESULTS = Path("results") / RUN.run_name
NEVER = "(?!x)x"


def res(path):
    """A path under results/<run_name>/."""
    return str(RESULTS / path)


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
    return [res("scores/experts.csv")]


def get_feature_targets():
    return [res(f"features/pairs/{a}__{b}.parquet") for a, b in PAIRS]


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


def manifest_path(name):
    """The manifest of a checkpoint; downloaded ones are ancient so a re-download does not cascade."""
    path = res(f"checkpoints/{name}/manifest.json")
    return ancient(path) if CATALOG.get(name).source.kind == "hf" else path


def get_skill_data_params(wildcards):
    return {"seed": RUN.seed, **RUN.tasks[wildcards.task].model_dump()}


def get_source_params(wildcards):
    return CATALOG.get(wildcards.model).source.model_dump()


def get_base_manifest(wildcards):
    return manifest_path(BASE)


def get_checkpoint_input(wildcards):
    """The base manifest (pre-flight reference) for every expert; nothing for the base itself."""
    return {} if wildcards.model == BASE else {"base": manifest_path(BASE)}


def get_tiny_checkpoint_input(wildcards):
    return {"train": train_files(CATALOG.get(wildcards.model).tasks)}


def get_tiny_checkpoint_params(wildcards):
    return {
        "source": get_source_params(wildcards),
        "seed": CATALOG.seed_of(wildcards.model),
    }


def train_files(tasks):
    return [res(f"data/{task}/train.jsonl") for task in tasks]


def get_finetune_expert_input(wildcards):
    name = wildcards.model
    return {
        "parent": manifest_path(CATALOG.parent_of(name)),
        "base": manifest_path(BASE),
        "train": train_files(CATALOG.get(name).tasks),
    }


def get_finetune_expert_params(wildcards):
    source = CATALOG.get(wildcards.model).source
    return {**source.train.model_dump(), "seed": CATALOG.seed_of(wildcards.model)}


def get_scoring_params(wildcards):
    return RUN.scoring.model_dump()


def expert_score_files(name, tasks):
    """The per-task score records of one checkpoint."""
    return [res(f"scores/experts/{name}/{task}.json") for task in tasks]


def task_yamls(tasks):
    """The lm-eval YAMLs that scoring these tasks reads (their own and the shared templates)."""
    return sorted(
        [f"{TASK_DIR}/simmerge_{task}.yaml" for task in tasks]
        + [f"{TASK_DIR}/_generate_template_yaml", f"{TASK_DIR}/_mc_template_yaml"]
    )


def get_checkpoint_manifest(wildcards):
    return manifest_path(wildcards.model)


def get_expert_scores_yamls(wildcards):
    return task_yamls([wildcards.task])


def get_home_tasks(wildcards):
    return {entry.name: list(entry.tasks) for entry in CATALOG.entries}


TASK_DIR = "config/tasks"
# A malformed task YAML fails here, before any checkpoint is built, not when the first expert is scored.
simmerge.merges.tasks.check_task_yamls(TASK_DIR, TASKS)


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
    return [res(f"merges/{a}__{b}/{op}.json") for op, a, b in MERGE_JOBS]


def get_labels_targets():
    return [res("labels.parquet"), res("ranking/summary.md")]


def get_operator_ranking_params(wildcards):
    return {"operators": list(OPERATORS), "z": RUN.merges.tie_z}


def get_merge_score_input(wildcards):
    """Only the tasks the merge is scored on: a task added to the run re-runs no merge it does not concern."""
    a, b = wildcards.a, wildcards.b
    tasks = CATALOG.merge_tasks(a, b)
    return {
        "a": manifest_path(a),
        "b": manifest_path(b),
        "base": manifest_path(BASE),
        "a_scores": expert_score_files(a, tasks),
        "b_scores": expert_score_files(b, tasks),
        "tasks": task_yamls(tasks),
        "eval": [res(f"data/{task}/eval.jsonl") for task in tasks],
    }


def get_merge_score_params(wildcards):
    """The job's own operator, its seed (only randomised operators use one) and the tasks it is scored on."""
    operator = OPERATORS[wildcards.op]
    return {
        "operator": operator.model_dump(mode="json"),
        "seeds": CATALOG.merge_seeds if operator.randomised else [0],
        "tasks": CATALOG.merge_tasks(wildcards.a, wildcards.b),
    }


def get_merge_score_output():
    """The record and its mergekit YAML; the merged checkpoint too when the config keeps merges."""
    outputs = {
        "record": res("merges/{a}__{b}/{op}.json"),
        "config": res("merges/{a}__{b}/{op}.mergekit.yml"),
    }
    if RUN.merges.keep_merged:
        outputs["merged"] = directory(res("merges/{a}__{b}/{op}.merged"))
    return outputs


def get_labels_params(wildcards):
    """Which merge record serves each (ordered pair, operator) of the grid."""
    return [
        {"a": a, "b": b, "operator": name, "merged": list(operator.pair_to_merge(a, b))}
        for a, b in PAIRS
        for name, operator in OPERATORS.items()
    ]


# ---- predictor and comparison ---------------------------------------------------------------------------------

PREDICTOR_SEED = CATALOG.predictor_seed


def get_predictor_targets():
    return [res("predictor/model.skops"), res("predictor/cv.json")]


def get_compare_targets():
    return [res("compare/summary.csv")]


def get_report_targets():
    return [res("report.html")]


def get_predictor_params(wildcards):
    return {
        "families": list(RUN.predictor.families),
        "seed": PREDICTOR_SEED,
        "operators": list(OPERATORS),
    }


def get_compare_params(wildcards):
    return {
        **get_predictor_params(wildcards),
        "z": RUN.merges.tie_z,
        "bootstrap": RUN.predictor.bootstrap,
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
        },
        "operators": [op.model_dump(mode="json") for op in OPERATORS.values()],
        "experts": EXPERTS,
        "seed": PREDICTOR_SEED,
        "tie_z": RUN.merges.tie_z,
        "arrivals": [arrival.model_dump() for arrival in RUN.bandit.arrivals],
    }


# ---- multi-way merges -----------------------------------------------------------------------------------------

MULTIWAY_SETS = CATALOG.multiway_sets
MULTIWAY = RUN.multiway


def get_multiway_targets():
    return [res("multiway/summary.csv")] if MULTIWAY_SETS else []


def get_multiway_tasks(wildcards):
    return list(MULTIWAY_SETS[wildcards.mwset].tasks)


def get_multiway_plan_input(wildcards):
    candidates = MULTIWAY_SETS[wildcards.mwset].checkpoints
    return {
        "predictor": res("predictor/model.skops"),
        "checkpoints": [manifest_path(name) for name in (BASE, *candidates)],
        "summaries": [
            res(f"features/models/{name}.npz") for name in (BASE, *candidates)
        ],
        "scores": [
            path
            for name in candidates
            for path in expert_score_files(name, MULTIWAY_SETS[wildcards.mwset].tasks)
        ],
        "probes": [res(f"data/{task}/probe.jsonl") for task in TASKS],
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


def multiway_node_path(mwset, node):
    return res(f"multiway/{mwset}/nodes/{node}")


def get_multiway_node_input(wildcards):
    """The node's inputs: expert checkpoints (manifests) or the merged nodes it is built from."""
    node = multiway_recipes(wildcards.mwset)["nodes"][wildcards.node]
    return {
        "base": manifest_path(BASE),
        "inputs": [
            (
                manifest_path(name)
                if name in EXPERTS
                else multiway_node_path(wildcards.mwset, name)
            )
            for name in node["inputs"]
        ],
    }


def get_multiway_node_params(wildcards):
    return {
        **multiway_recipes(wildcards.mwset)["nodes"][wildcards.node],
        "merge_seed": CATALOG.merge_seed,
    }


def get_multiway_node_output():
    """The merge record; the merged checkpoint is temporary unless multiway.keep_merged."""
    merged = directory(res("multiway/{mwset}/nodes/{node}"))
    return {
        "record": res("multiway/{mwset}/nodes/{node}.json"),
        "merged": merged if MULTIWAY.keep_merged else temp(merged),
    }


def get_multiway_score_input(wildcards):
    chosen = MULTIWAY_SETS[wildcards.mwset]
    return {
        "merged": multiway_node_path(wildcards.mwset, wildcards.node),
        "record": res(f"multiway/{wildcards.mwset}/nodes/{wildcards.node}.json"),
        "scores": [
            path
            for name in chosen.checkpoints
            for path in expert_score_files(name, chosen.tasks)
        ],
        "tasks": task_yamls(chosen.tasks),
        "eval": [res(f"data/{task}/eval.jsonl") for task in chosen.tasks],
    }


def get_multiway_summary_input(wildcards):
    recipes = multiway_recipes(wildcards.mwset)
    finals = sorted(
        {node for nodes in recipes["approaches"].values() for node in nodes}
    )
    chosen = MULTIWAY_SETS[wildcards.mwset]
    return {
        "plan": res(f"multiway/{wildcards.mwset}/plan.json"),
        "recipes": checkpoints.multiway_recipes.get(mwset=wildcards.mwset).output[0],
        "node_scores": [
            res(f"multiway/{wildcards.mwset}/scores/{node}.json") for node in finals
        ],
        "scores": [
            path
            for name in chosen.checkpoints
            for path in expert_score_files(name, chosen.tasks)
        ],
    }


# ---- bandit -----------------------------------------------------------------------------------------------------


def get_bandit_targets():
    return [res("bandit/summary.csv")]


def get_bandit_params(wildcards):
    spec = RUN.bandit
    return {
        **spec.model_dump(exclude={"seed", "seeds"}),
        "seeds": [CATALOG.bandit_seed + offset for offset in range(spec.seeds)],
    }
