# Bandit stage: the contextual bandit replayed on the labels, with checkpoints, tasks and operators arriving over
# time, against the frozen offline predictor, epsilon-greedy, random, the best fixed operator and the oracle.


rule bandit_replay:
    input:
        labels=LAYOUT.labels_parquet,
    output:
        replay=LAYOUT.bandit_replay,
        summary=report(
            LAYOUT.bandit_summary,
            caption="../report/bandit.rst",
            category="Bandit",
        ),
    log:
        LAYOUT.log("bandit_replay", "all"),
    benchmark:
        LAYOUT.benchmark("bandit_replay", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        bandit=get_bandit_params,
    script:
        "../workflow_scripts/bandit_replay.py"
