# Catalog stage: task data, one checkpoint per catalog entry (one rule per source kind), expert scores (one job
# per checkpoint and task, so that a new task re-scores no checkpoint on the old ones).


rule skill_data:
    output:
        train=res("data/{task}/train.jsonl"),
        eval=res("data/{task}/eval.jsonl"),
        probe=res("data/{task}/probe.jsonl"),
    log:
        res("logs/skill_data/{task}.log"),
    benchmark:
        res("benchmarks/skill_data/{task}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        spec=get_skill_data_params,
    script:
        "../workflow_scripts/skill_data.py"


rule convert_gguf:
    output:
        res("checkpoints/{model}/manifest.json"),
    log:
        res("logs/convert_gguf/{model}.log"),
    benchmark:
        res("benchmarks/convert_gguf/{model}.tsv")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("gguf")),
    conda:
        "../envs/simmerge.yaml"
    params:
        source=get_source_params,
    script:
        "../workflow_scripts/convert_gguf.py"


rule tiny_checkpoint:
    input:
        unpack(get_tiny_checkpoint_input),
    output:
        res("checkpoints/{model}/manifest.json"),
    log:
        res("logs/tiny_checkpoint/{model}.log"),
    benchmark:
        res("benchmarks/tiny_checkpoint/{model}.tsv")
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
        res("checkpoints/{model}/manifest.json"),
    log:
        res("logs/fetch_checkpoint/{model}.log"),
    benchmark:
        res("benchmarks/fetch_checkpoint/{model}.tsv")
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
        res("checkpoints/{model}/manifest.json"),
    log:
        res("logs/local_checkpoint/{model}.log"),
    benchmark:
        res("benchmarks/local_checkpoint/{model}.tsv")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("local")),
    conda:
        "../envs/simmerge.yaml"
    params:
        source=get_source_params,
    script:
        "../workflow_scripts/local_checkpoint.py"


rule finetune_expert:
    input:
        unpack(get_finetune_expert_input),
    output:
        res("checkpoints/{model}/manifest.json"),
    log:
        res("logs/finetune_expert/{model}.log"),
    benchmark:
        res("benchmarks/finetune_expert/{model}.tsv")
    wildcard_constraints:
        model=alternation(CATALOG.names_by_source("finetune")),
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        train=get_finetune_expert_params,
    script:
        "../workflow_scripts/finetune_expert.py"


rule expert_scores:
    input:
        manifest=get_checkpoint_manifest,
        tasks=get_expert_scores_yamls,
        eval=res("data/{task}/eval.jsonl"),
    output:
        res("scores/experts/{model}/{task}.json"),
    log:
        res("logs/expert_scores/{model}/{task}.log"),
    benchmark:
        res("benchmarks/expert_scores/{model}/{task}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/expert_scores.py"


rule expert_scores_table:
    input:
        expand(res("scores/experts/{model}/{task}.json"), model=MODELS, task=TASKS),
    output:
        csv=res("scores/experts.csv"),
        markdown=res("scores/experts.md"),
    log:
        res("logs/expert_scores_table/all.log"),
    benchmark:
        res("benchmarks/expert_scores_table/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        home_tasks=get_home_tasks,
    script:
        "../workflow_scripts/expert_scores_table.py"
