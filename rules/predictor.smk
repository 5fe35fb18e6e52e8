# Predictor stage: fit SimMerge's predictor on the labels, the model family chosen by grouped cross-validation.


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
