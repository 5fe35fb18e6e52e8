# Compare stage: SimMerge's choices against every fixed operator, the per-pair oracle and random choice, under
# leave-one-checkpoint-out and leave-one-task-out cross-validation.


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
            res("compare/{protocol}/summary.json"),
            protocol=simmerge.core.config.PROTOCOLS,
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
