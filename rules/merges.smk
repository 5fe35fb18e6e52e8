# Merges stage: every operator on every ordered expert pair (symmetric operators once per unordered pair),
# merged by mergekit, scored by lm-eval, normalised by the better parent; then the labels table.


rule merge_score:
    input:
        unpack(get_merge_score_input),
    output:
        **get_merge_score_output(),
    log:
        res("logs/merge_score/{a}__{b}/{op}.log"),
    benchmark:
        res("benchmarks/merge_score/{a}__{b}/{op}.tsv")
    conda:
        "../envs/simmerge.yaml"
    # One thread per job, jobs side by side: mergekit's magnitude pruning (torch.argsort, TIES/DELLA/breadcrumbs)
    # runs on one core whatever the thread count. `--set-threads merge_score=N` overrides it.
    threads: 1
    params:
        merge=get_merge_score_params,
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/merge_score.py"


rule labels:
    input:
        features=get_feature_targets(),
        merges=get_merge_targets(),
    output:
        parquet=res("labels.parquet"),
        csv=report(res("labels.csv"), caption="../report/labels.rst", category="Labels"),
    log:
        res("logs/labels/all.log"),
    benchmark:
        res("benchmarks/labels/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        grid=get_labels_params,
    script:
        "../workflow_scripts/labels.py"


rule operator_ranking:
    input:
        labels=res("labels.parquet"),
    output:
        best=res("ranking/best_per_pair.csv"),
        wins=res("ranking/operator_wins.csv"),
        summary=report(
            res("ranking/summary.md"),
            caption="../report/ranking.rst",
            category="Labels",
        ),
    log:
        res("logs/operator_ranking/all.log"),
    benchmark:
        res("benchmarks/operator_ranking/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        ranking=get_operator_ranking_params,
    script:
        "../workflow_scripts/operator_ranking.py"
