# Merges stage: every operator on every ordered expert pair (symmetric operators once per unordered pair),
# merged by mergekit, scored by lm-eval, normalised by the better parent; then the labels table.


rule merge_score:
    input:
        unpack(get_merge_score_input),
    output:
        **get_merge_score_output(),
    log:
        LAYOUT.log("merge_score", LAYOUT.pair("{a}", "{b}"), "{op}"),
    benchmark:
        LAYOUT.benchmark("merge_score", LAYOUT.pair("{a}", "{b}"), "{op}")
    conda:
        "../envs/simmerge.yaml"
    # One thread per job, jobs side by side: mergekit's magnitude pruning (torch.argsort, TIES/DELLA/breadcrumbs)
    # runs on one core whatever the thread count. `--set-threads merge_score=N` overrides it.
    threads: 1
    resources:
        **sized("merge_score"),
    params:
        merge=get_merge_score_params,
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/merge_score.py"


rule labels:
    input:
        features=get_feature_targets(),
        merges=get_merge_targets(),
        merge_items=get_merge_item_targets(),
        parent_items=get_label_parent_items(),
    output:
        parquet=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
        csv=report(LAYOUT.labels_csv, caption="../report/labels.rst", category="Labels"),
    log:
        LAYOUT.log("labels", "all"),
    benchmark:
        LAYOUT.benchmark("labels", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        grid=get_labels_params,
    script:
        "../workflow_scripts/labels.py"


rule operator_ranking:
    input:
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
    output:
        best=LAYOUT.ranking_best_per_pair,
        wins=LAYOUT.ranking_operator_wins,
        summary=report(
            LAYOUT.ranking_summary,
            caption="../report/ranking.rst",
            category="Labels",
        ),
    log:
        LAYOUT.log("operator_ranking", "all"),
    benchmark:
        LAYOUT.benchmark("operator_ranking", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        ranking=get_operator_ranking_params,
    script:
        "../workflow_scripts/operator_ranking.py"
