# Multi-way stage: per candidate set, SimMerge's plan (a chain of 2-way merges chosen from 2-way predictions and
# probe passes on the intermediates), the baselines' recipes, every merge of them (intermediates cached by content),
# lm-eval scores of the final models on the set's target tasks, and the comparison.


rule multiway_plan:
    input:
        unpack(get_multiway_plan_input),
    output:
        plan=LAYOUT.multiway_plan("{mwset}"),
        predictions=LAYOUT.multiway_plan_predictions("{mwset}"),
        probes=directory(LAYOUT.multiway_plan_probes("{mwset}")),
    log:
        LAYOUT.log("multiway_plan", "{mwset}"),
    benchmark:
        LAYOUT.benchmark("multiway_plan", "{mwset}")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    resources:
        **sized("multiway_plan"),
    params:
        plan=get_multiway_plan_params,
    script:
        "../workflow_scripts/multiway_plan.py"


# A checkpoint: which merges exist (SimMerge's chain, the baselines, the oracle's subsets and orders) is known only
# once the plan is.
checkpoint multiway_recipes:
    input:
        plan=LAYOUT.multiway_plan("{mwset}"),
        labels=LAYOUT.labels_parquet,
    output:
        LAYOUT.multiway_recipes("{mwset}"),
    log:
        LAYOUT.log("multiway_recipes", "{mwset}"),
    benchmark:
        LAYOUT.benchmark("multiway_recipes", "{mwset}")
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
        LAYOUT.log("multiway_node", "{mwset}", "{node}"),
    benchmark:
        LAYOUT.benchmark("multiway_node", "{mwset}", "{node}")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    resources:
        **sized("multiway_node"),
    params:
        node=get_multiway_node_params,
    script:
        "../workflow_scripts/multiway_node.py"


rule multiway_score:
    input:
        unpack(get_multiway_score_input),
    output:
        record=LAYOUT.multiway_node_scores("{mwset}", "{node}"),
        outcomes=LAYOUT.multiway_node_items("{mwset}", "{node}"),
    log:
        LAYOUT.log("multiway_score", "{mwset}", "{node}"),
    benchmark:
        LAYOUT.benchmark("multiway_score", "{mwset}", "{node}")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    resources:
        **sized("multiway_score"),
    params:
        tasks=get_multiway_tasks,
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/multiway_score.py"


rule multiway_summary:
    input:
        unpack(get_multiway_summary_input),
    output:
        LAYOUT.multiway_set_summary("{mwset}"),
    log:
        LAYOUT.log("multiway_summary", "{mwset}"),
    benchmark:
        LAYOUT.benchmark("multiway_summary", "{mwset}")
    conda:
        "../envs/simmerge.yaml"
    params:
        tasks=get_multiway_tasks,
    script:
        "../workflow_scripts/multiway_summary.py"


rule multiway_table:
    input:
        expand(LAYOUT.multiway_set_summary("{mwset}"), mwset=list(MULTIWAY_SETS)),
    output:
        report(
            LAYOUT.multiway_summary,
            caption="../report/multiway.rst",
            category="Multi-way merges",
        ),
    log:
        LAYOUT.log("multiway_table", "all"),
    benchmark:
        LAYOUT.benchmark("multiway_table", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        sets=list(MULTIWAY_SETS),
    script:
        "../workflow_scripts/multiway_table.py"
