# Features stage: a probe pass per checkpoint and task, a weight sketch per checkpoint, gathered into one model
# summary per checkpoint; then similarity features per ordered expert pair. Probe passes are per task so that a
# new task costs one pass per checkpoint and re-runs none of the existing ones.


rule probe_pass:
    input:
        manifest=get_checkpoint_manifest,
        probes=LAYOUT.task_data("{task}", "probe"),
        preflight=preflight_gate(),
    output:
        LAYOUT.probe_part("{model}", "{task}"),
    log:
        LAYOUT.log("probe_pass", "{model}", "{task}"),
    benchmark:
        LAYOUT.benchmark("probe_pass", "{model}", "{task}")
    conda:
        "../envs/simmerge.yaml"
    threads: 2
    resources:
        **sized("probe_pass"),
    params:
        features=get_probe_pass_params,
        seed=RUN.seed,
    script:
        "../workflow_scripts/probe_pass.py"


rule weight_sketch:
    input:
        manifest=get_checkpoint_manifest,
        base=get_base_manifest,
        preflight=preflight_gate(),
    output:
        LAYOUT.weight_sketch("{model}"),
    log:
        LAYOUT.log("weight_sketch", "{model}"),
    benchmark:
        LAYOUT.benchmark("weight_sketch", "{model}")
    conda:
        "../envs/simmerge.yaml"
    threads: 1
    resources:
        **sized("weight_sketch"),
    params:
        features=get_weight_sketch_params,
        seed=RUN.seed,
    script:
        "../workflow_scripts/weight_sketch.py"


rule probe_features:
    input:
        probes=expand(LAYOUT.probe_part("{{model}}", "{task}"), task=TASKS),
        sketch=LAYOUT.weight_sketch("{model}"),
    output:
        LAYOUT.model_summary("{model}"),
    log:
        LAYOUT.log("probe_features", "{model}"),
    benchmark:
        LAYOUT.benchmark("probe_features", "{model}")
    conda:
        "../envs/simmerge.yaml"
    params:
        tasks=TASKS,
    script:
        "../workflow_scripts/probe_features.py"


rule pair_features:
    input:
        a=LAYOUT.model_summary("{a}"),
        b=LAYOUT.model_summary("{b}"),
        base=LAYOUT.model_summary(BASE),
    output:
        LAYOUT.pair_features("{a}", "{b}"),
    log:
        LAYOUT.log("pair_features", LAYOUT.pair("{a}", "{b}")),
    benchmark:
        LAYOUT.benchmark("pair_features", LAYOUT.pair("{a}", "{b}"))
    conda:
        "../envs/simmerge.yaml"
    params:
        top_fraction=RUN.features.top_fraction,
    script:
        "../workflow_scripts/pair_features.py"
