# Multi-way stage: per candidate set, SimMerge's plan (a chain of 2-way merges chosen from 2-way predictions and
# probe passes on the intermediates), the baselines' recipes, every merge of them (intermediates cached by content),
# lm-eval scores of the final models on the set's target tasks, and the comparison.


rule multiway_plan:
    input:
        unpack(get_multiway_plan_input),
    output:
        plan=res("multiway/{mwset}/plan.json"),
        predictions=res("multiway/{mwset}/plan_predictions.csv"),
        probes=directory(res("multiway/{mwset}/plan_probes")),
    log:
        res("logs/multiway_plan/{mwset}.log"),
    benchmark:
        res("benchmarks/multiway_plan/{mwset}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        plan=get_multiway_plan_params,
    script:
        "../workflow_scripts/multiway_plan.py"


# A checkpoint: which merges exist (SimMerge's chain, the baselines, the oracle's subsets and orders) is known only
# once the plan is.
checkpoint multiway_recipes:
    input:
        plan=res("multiway/{mwset}/plan.json"),
        labels=res("labels.parquet"),
    output:
        res("multiway/{mwset}/recipes.json"),
    log:
        res("logs/multiway_recipes/{mwset}.log"),
    benchmark:
        res("benchmarks/multiway_recipes/{mwset}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        recipes=get_multiway_recipes_params,
    script:
        "../workflow_scripts/multiway_recipes.py"


# One merge of a recipe tree. Nodes are named by a hash of their content (operators with parameters, inputs, seed),
# so an intermediate shared by several chains is merged once, and a changed operator gives new nodes.
rule multiway_node:
    input:
        unpack(get_multiway_node_input),
    output:
        **get_multiway_node_output(),
    log:
        res("logs/multiway_node/{mwset}/{node}.log"),
    benchmark:
        res("benchmarks/multiway_node/{mwset}/{node}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    params:
        node=get_multiway_node_params,
    script:
        "../workflow_scripts/multiway_node.py"


rule multiway_score:
    input:
        unpack(get_multiway_score_input),
    output:
        res("multiway/{mwset}/scores/{node}.json"),
    log:
        res("logs/multiway_score/{mwset}/{node}.log"),
    benchmark:
        res("benchmarks/multiway_score/{mwset}/{node}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    params:
        tasks=get_multiway_tasks,
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/multiway_score.py"


rule multiway_summary:
    input:
        unpack(get_multiway_summary_input),
    output:
        res("multiway/{mwset}/summary.csv"),
    log:
        res("logs/multiway_summary/{mwset}.log"),
    benchmark:
        res("benchmarks/multiway_summary/{mwset}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        tasks=get_multiway_tasks,
    script:
        "../workflow_scripts/multiway_summary.py"


rule multiway_table:
    input:
        expand(res("multiway/{mwset}/summary.csv"), mwset=list(MULTIWAY_SETS)),
    output:
        report(
            res("multiway/summary.csv"),
            caption="../report/multiway.rst",
            category="Multi-way merges",
        ),
    log:
        res("logs/multiway_table/all.log"),
    benchmark:
        res("benchmarks/multiway_table/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        sets=list(MULTIWAY_SETS),
    script:
        "../workflow_scripts/multiway_table.py"
