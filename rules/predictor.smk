# Predictor stage: fit SimMerge's predictor on the labels, the model family chosen by grouped cross-validation.


rule predictor:
    input:
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
    output:
        model=LAYOUT.predictor_model,
        cv=LAYOUT.predictor_cv,
    log:
        LAYOUT.log("predictor", "fit"),
    benchmark:
        LAYOUT.benchmark("predictor", "fit")
    conda:
        "../envs/simmerge.yaml"
    params:
        predictor=get_predictor_params,
    script:
        "../workflow_scripts/predictor.py"
