# Predictor stage: fit SimMerge's predictor on the labels; compare its choices with fixed operators, the oracle
# and random choice under leave-one-checkpoint-out and leave-one-task-out cross-validation.


rule predictor:
    input:
        labels=res("labels.parquet"),
    output:
        model=res("predictor/model.skops"),
        cv=res("predictor/cv.json"),
    log:
        res("logs/predictor/fit.log"),
    benchmark:
        res("benchmarks/predictor/fit.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        predictor=get_predictor_params,
    script:
        "../workflow_scripts/predictor.py"


rule compare:
    input:
        labels=res("labels.parquet"),
    output:
        units=res("compare/{protocol}/units.csv"),
        candidates=res("compare/{protocol}/candidates.csv"),
        folds=res("compare/{protocol}/folds.csv"),
        summary=res("compare/{protocol}/summary.json"),
    log:
        res("logs/compare/{protocol}.log"),
    benchmark:
        res("benchmarks/compare/{protocol}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        compare=get_compare_params,
    script:
        "../workflow_scripts/compare.py"


rule compare_summary:
    input:
        expand(
            res("compare/{protocol}/summary.json"), protocol=simmerge.config.PROTOCOLS
        ),
    output:
        report(
            res("compare/summary.csv"),
            caption="../report/compare_summary.rst",
            category="Comparison",
        ),
    log:
        res("logs/compare/summary.log"),
    benchmark:
        res("benchmarks/compare/summary.tsv")
    conda:
        "../envs/simmerge.yaml"
    script:
        "../workflow_scripts/compare_summary.py"


rule report:
    input:
        labels=res("labels.parquet"),
        ranking=res("ranking/summary.md"),
        experts=res("scores/experts.md"),
        model=res("predictor/model.skops"),
        cv=res("predictor/cv.json"),
        summaries=expand(
            res("compare/{protocol}/summary.json"), protocol=simmerge.config.PROTOCOLS
        ),
        units=res("compare/checkpoint/units.csv"),
        candidates=res("compare/checkpoint/candidates.csv"),
        merges=get_merge_targets(),
        multiway=get_multiway_targets(),
        bandit=res("bandit/replay.csv"),
    output:
        report(
            res("report.html"), caption="../report/report_html.rst", category="Report"
        ),
    log:
        res("logs/report/report.log"),
    benchmark:
        res("benchmarks/report/report.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        report=get_report_params,
    script:
        "../workflow_scripts/report.py"
