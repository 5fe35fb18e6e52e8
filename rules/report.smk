# Report stage: report.html from the run's own files (labels, ranking, predictor, comparison, multi-way, bandit).


rule report:
    input:
        labels=LAYOUT.labels_parquet,
        ranking=LAYOUT.ranking_summary,
        experts=LAYOUT.expert_scores_md,
        model=LAYOUT.predictor_model,
        cv=LAYOUT.predictor_cv,
        summaries=expand(
            LAYOUT.comparison_summary("{protocol}"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
        units=LAYOUT.comparison_units("checkpoint"),
        candidates=LAYOUT.comparison_candidates("checkpoint"),
        merges=get_merge_targets(),
        multiway=get_multiway_targets(),
        bandit=LAYOUT.bandit_replay,
    output:
        report(LAYOUT.report, caption="../report/report_html.rst", category="Report"),
    log:
        LAYOUT.log("report", "report"),
    benchmark:
        LAYOUT.benchmark("report", "report")
    conda:
        "../envs/simmerge.yaml"
    params:
        report=get_report_params,
    script:
        "../workflow_scripts/report.py"
