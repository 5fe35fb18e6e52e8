# Features stage: a probe pass per checkpoint and task, a weight sketch per checkpoint, gathered into one model
# summary per checkpoint; then similarity features per ordered expert pair. Probe passes are per task so that a
# new task costs one pass per checkpoint and re-runs none of the existing ones.


rule probe_pass:
    input:
        manifest=get_checkpoint_manifest,
        probes=res("data/{task}/probe.jsonl"),
    output:
        res("features/models/{model}/probes/{task}.npz"),
    log:
        res("logs/probe_pass/{model}/{task}.log"),
    benchmark:
        res("benchmarks/probe_pass/{model}/{task}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        features=get_probe_pass_params,
        seed=RUN.seed,
    script:
        "../workflow_scripts/probe_pass.py"


rule weight_sketch:
    input:
        manifest=get_checkpoint_manifest,
        base=get_base_manifest,
    output:
        res("features/models/{model}/sketch.npz"),
    log:
        res("logs/weight_sketch/{model}.log"),
    benchmark:
        res("benchmarks/weight_sketch/{model}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    params:
        features=get_weight_sketch_params,
        seed=RUN.seed,
    script:
        "../workflow_scripts/weight_sketch.py"


rule probe_features:
    input:
        probes=expand(res("features/models/{{model}}/probes/{task}.npz"), task=TASKS),
        sketch=res("features/models/{model}/sketch.npz"),
    output:
        res("features/models/{model}.npz"),
    log:
        res("logs/probe_features/{model}.log"),
    benchmark:
        res("benchmarks/probe_features/{model}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        tasks=TASKS,
    script:
        "../workflow_scripts/probe_features.py"


rule pair_features:
    input:
        a=res("features/models/{a}.npz"),
        b=res("features/models/{b}.npz"),
        base=res(f"features/models/{BASE}.npz"),
    output:
        res("features/pairs/{a}__{b}.parquet"),
    log:
        res("logs/pair_features/{a}__{b}.log"),
    benchmark:
        res("benchmarks/pair_features/{a}__{b}.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        top_fraction=RUN.features.top_fraction,
    script:
        "../workflow_scripts/pair_features.py"
