# Features stage: one probe pass per checkpoint, then similarity features per ordered expert pair.


rule probe_features:
    input:
        manifest=get_checkpoint_manifest,
        base=get_base_manifest,
        probes=expand(res("data/{task}/probe.jsonl"), task=TASKS),
    output:
        res("features/models/{model}.npz"),
    log:
        res("logs/probe_features/{model}.log"),
    benchmark:
        res("benchmarks/probe_features/{model}.tsv")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    params:
        tasks=TASKS,
        features=get_probe_features_params,
        seed=RUN.seed,
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
