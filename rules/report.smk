# Report stage: report.html from the run's own files (labels, ranking, predictor, comparison, multi-way, bandit).


rule report:
    input:
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
        experts=LAYOUT.expert_scores_csv,
        cv=LAYOUT.predictor_cv,
        summaries=expand(
            LAYOUT.comparison_summary("{protocol}"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
        units=LAYOUT.comparison_units("checkpoint"),
        importances=LAYOUT.comparison_importances("checkpoint"),
        candidates=LAYOUT.comparison_candidates("checkpoint"),
        merges=get_merge_targets(),
        provenance=get_provenance_records(),
        multiway=get_multiway_targets(),
        bandit=LAYOUT.bandit_replay,
        search_summary=LAYOUT.search_summary,
        transfers=[
            LAYOUT.transfer_summary(source) for source in CATALOG.transfer_sources
        ],
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


# The results page of the run (Markdown): its measured results and what each stage cost, from the run's own files.
# It is written inside the run folder like every other output; docs/results.md, the page of the default run that
# the repository keeps, is a copy made after a run (`cp results/default/results.md docs/results.md`), so that no
# run overwrites the committed page and `--delete-all-output` never deletes it.
rule results_page:
    input:
        # every job's benchmark file, as an input named after its rule
        unpack(get_job_benchmarks),
        unpack(get_multiway_benchmarks),
        experts=LAYOUT.expert_scores_csv,
        ranking=LAYOUT.ranking_summary,
        cv=LAYOUT.predictor_cv,
        summaries=expand(
            LAYOUT.comparison_summary("{protocol}"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
        # the merge SimMerge chose per pair, counted in its decision cost
        units=LAYOUT.comparison_units("checkpoint"),
        records=get_merge_targets(),
        provenance=get_provenance_records(),
        multiway=get_multiway_targets(),
        bandit=LAYOUT.bandit_summary,
        # not named after a rule: every rule's name is the input of its benchmark files
        search_summary=LAYOUT.search_summary,
        transfer_summaries=[
            LAYOUT.transfer_summary(source) for source in CATALOG.transfer_sources
        ],
    output:
        LAYOUT.results_page,
    log:
        LAYOUT.log("results_page", "all"),
    benchmark:
        LAYOUT.benchmark("results_page", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        page=get_results_page_params,
    script:
        "../workflow_scripts/results_page.py"
