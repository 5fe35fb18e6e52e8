# Compare stage: SimMerge's choices against every fixed operator, the per-pair oracle and random choice, under
# leave-one-checkpoint-out and leave-one-task-out cross-validation.


rule compare:
    input:
        labels=LAYOUT.labels_parquet,
    output:
        units=LAYOUT.comparison_units("{protocol}"),
        candidates=LAYOUT.comparison_candidates("{protocol}"),
        folds=LAYOUT.comparison_folds("{protocol}"),
        summary=LAYOUT.comparison_summary("{protocol}"),
    log:
        LAYOUT.log("compare", "{protocol}"),
    benchmark:
        LAYOUT.benchmark("compare", "{protocol}")
    conda:
        "../envs/simmerge.yaml"
    params:
        compare=get_compare_params,
    script:
        "../workflow_scripts/compare.py"


rule compare_summary:
    input:
        expand(
            LAYOUT.comparison_summary("{protocol}"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
    output:
        report(
            LAYOUT.compare_summary,
            caption="../report/compare_summary.rst",
            category="Comparison",
        ),
    log:
        LAYOUT.log("compare", "summary"),
    benchmark:
        LAYOUT.benchmark("compare", "summary")
    conda:
        "../envs/simmerge.yaml"
    script:
        "../workflow_scripts/compare_summary.py"
