# Catalog stage: task data, one checkpoint per catalog entry (one rule per source kind), the pre-flight gate that
# every costly job waits for (rules/common.smk, "pre-flight gate"), expert scores (one job per checkpoint and task,
# so that a new task re-scores no checkpoint on the old ones).


rule skill_data:
    output:
        train=LAYOUT.task_data("{task}", "train"),
        eval=LAYOUT.task_data("{task}", "eval"),
        probe=LAYOUT.task_data("{task}", "probe"),
    log:
        LAYOUT.log("skill_data", "{task}"),
    benchmark:
        LAYOUT.benchmark("skill_data", "{task}")
    wildcard_constraints:
        task=alternation(BUILTIN_TASKS),
    conda:
        "../envs/simmerge.yaml"
    params:
        spec=get_skill_data_params,
    script:
        "../workflow_scripts/skill_data.py"


# An lm-eval task (registry or the user's YAML): the scored documents by index, probes and training rows drawn
# from it, and task.json, what scoring jobs rebuild the task from (simmerge.catalog.harness).
rule task_data:
    input:
        unpack(get_task_data_input),
    output:
        train=LAYOUT.task_data("{task}", "train"),
        eval=LAYOUT.task_data("{task}", "eval"),
        probe=LAYOUT.task_data("{task}", "probe"),
        record=LAYOUT.task_record("{task}"),
    log:
        LAYOUT.log("task_data", "{task}"),
    benchmark:
        LAYOUT.benchmark("task_data", "{task}")
    wildcard_constraints:
        task=alternation(HARNESS_TASKS),
    conda:
        "../envs/simmerge.yaml"
    params:
        task=get_task_data_params,
    script:
        "../workflow_scripts/task_data.py"


# Not part of `all`: run it where the Hub is reachable (a login node, a workstation) before the workflow, whose
# jobs all read the Hub and the datasets offline. Cached files are not downloaded again.
rule prefetch:
    output:
        LAYOUT.prefetch_record,
    log:
        LAYOUT.log("prefetch", "all"),
    conda:
        "../envs/simmerge.yaml"
    params:
        downloads=get_prefetch_params,
    script:
        "../workflow_scripts/prefetch.py"


rule convert_gguf:
    output:
        LAYOUT.checkpoint_manifest("{model}"),
    log:
        LAYOUT.log("convert_gguf", "{model}"),
    benchmark:
        LAYOUT.benchmark("convert_gguf", "{model}")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("gguf")),
    conda:
        "../envs/simmerge.yaml"
    resources:
        **sized("convert_gguf"),
    params:
        source=get_source_params,
    script:
        "../workflow_scripts/convert_gguf.py"


rule tiny_checkpoint:
    input:
        unpack(get_tiny_checkpoint_input),
    output:
        LAYOUT.checkpoint_manifest("{model}"),
    log:
        LAYOUT.log("tiny_checkpoint", "{model}"),
    benchmark:
        LAYOUT.benchmark("tiny_checkpoint", "{model}")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("tiny")),
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        spec=get_tiny_checkpoint_params,
    script:
        "../workflow_scripts/tiny_checkpoint.py"


rule fetch_checkpoint:
    input:
        unpack(get_checkpoint_input),
    output:
        LAYOUT.checkpoint_manifest("{model}"),
    log:
        LAYOUT.log("fetch_checkpoint", "{model}"),
    benchmark:
        LAYOUT.benchmark("fetch_checkpoint", "{model}")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("hf")),
    conda:
        "../envs/simmerge.yaml"
    params:
        source=get_source_params,
    script:
        "../workflow_scripts/fetch_checkpoint.py"


rule local_checkpoint:
    input:
        unpack(get_checkpoint_input),
    output:
        LAYOUT.checkpoint_manifest("{model}"),
    log:
        LAYOUT.log("local_checkpoint", "{model}"),
    benchmark:
        LAYOUT.benchmark("local_checkpoint", "{model}")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("local")),
    conda:
        "../envs/simmerge.yaml"
    params:
        source=get_source_params,
    script:
        "../workflow_scripts/local_checkpoint.py"


rule preflight:
    input:
        unpack(get_preflight_input),
    output:
        LAYOUT.preflight,
    log:
        LAYOUT.log("preflight", "all"),
    benchmark:
        LAYOUT.benchmark("preflight", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        unchecked=CHECKED_AFTER_FINETUNE,
    script:
        "../workflow_scripts/preflight.py"


rule finetune_expert:
    input:
        unpack(get_finetune_expert_input),
    output:
        LAYOUT.checkpoint_manifest("{model}"),
    log:
        LAYOUT.log("finetune_expert", "{model}"),
    benchmark:
        LAYOUT.benchmark("finetune_expert", "{model}")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("finetune")),
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    resources:
        **sized("finetune_expert"),
    params:
        train=get_finetune_expert_params,
    script:
        "../workflow_scripts/finetune_expert.py"


rule expert_scores:
    input:
        manifest=get_checkpoint_manifest,
        tasks=get_expert_scores_yamls,
        eval=LAYOUT.task_data("{task}", "eval"),
        preflight=preflight_gate(),
    output:
        record=LAYOUT.expert_scores("{model}", "{task}"),
        outcomes=LAYOUT.expert_items("{model}", "{task}"),
    log:
        LAYOUT.log("expert_scores", "{model}", "{task}"),
    benchmark:
        LAYOUT.benchmark("expert_scores", "{model}", "{task}")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    resources:
        **sized("expert_scores"),
    params:
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/expert_scores.py"


rule expert_scores_table:
    input:
        expand(LAYOUT.expert_scores("{model}", "{task}"), model=MODELS, task=TASKS),
    output:
        csv=LAYOUT.expert_scores_csv,
        markdown=LAYOUT.expert_scores_md,
    log:
        LAYOUT.log("expert_scores_table", "all"),
    benchmark:
        LAYOUT.benchmark("expert_scores_table", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        home_tasks=get_home_tasks,
    script:
        "../workflow_scripts/expert_scores_table.py"
