# Report stage: report.html from the run's own files (labels, ranking, predictor, comparison, multi-way, bandit).


rule report:
    input:
        labels=res("labels.parquet"),
        experts=res("scores/experts.csv"),
        model=res("predictor/model.skops"),
        cv=res("predictor/cv.json"),
        summaries=expand(
            res("compare/{protocol}/summary.json"),
            protocol=simmerge.core.config.PROTOCOLS,
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
