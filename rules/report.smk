# Report stage: report.html from the run's own files (labels, ranking, predictor, comparison, multi-way, bandit).


rule report:
    input:
        labels=res("labels.parquet"),
        ranking=res("ranking/summary.md"),
        experts=res("scores/experts.md"),
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


# The results page of the run (Markdown): its measured results and what each stage cost, from the run's own files.
# It is written inside the run folder like every other output; docs/results.md, the page of the default run that
# the repository keeps, is a copy made after a run (`cp results/default/results.md docs/results.md`), so that no
# run overwrites the committed page and `--delete-all-output` never deletes it.
rule results_page:
    input:
        # every job's benchmark file, as an input named after its rule
        unpack(get_job_benchmarks),
        unpack(get_multiway_benchmarks),
        experts=res("scores/experts.csv"),
        ranking=res("ranking/summary.md"),
        cv=res("predictor/cv.json"),
        summaries=expand(
            res("compare/{protocol}/summary.json"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
        records=get_merge_targets(),
        multiway=get_multiway_targets(),
        bandit=res("bandit/summary.csv"),
    output:
        res("results.md"),
    log:
        res("logs/results_page/all.log"),
    benchmark:
        res("benchmarks/results_page/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        page=get_results_page_params,
    script:
        "../workflow_scripts/results_page.py"
