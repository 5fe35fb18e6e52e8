# Merges stage: every operator on every ordered expert pair (symmetric operators once per unordered pair),
# merged by mergekit, scored by lm-eval, normalised by the better parent; then the labels table.


rule merge_score:
    input:
        unpack(get_merge_score_input),
    output:
        record=res("merges/{a}__{b}/{op}.json"),
        config=res("merges/{a}__{b}/{op}.mergekit.yml"),
    log:
        res("logs/merge_score/{a}__{b}/{op}.log"),
    benchmark:
        res("benchmarks/merge_score/{a}__{b}/{op}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
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
        csv=res("labels.csv"),
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
