# Bandit stage: the contextual bandit replayed on the labels, with checkpoints, tasks and operators arriving over
# time, against the frozen offline predictor, epsilon-greedy, random, the best fixed operator and the oracle.


rule bandit_replay:
    input:
        labels=res("labels.parquet"),
    output:
        replay=res("bandit/replay.csv"),
        summary=report(
            res("bandit/summary.csv"),
            caption="../report/bandit.rst",
            category="Bandit",
        ),
    log:
        res("logs/bandit_replay/all.log"),
    benchmark:
        res("benchmarks/bandit_replay/all.tsv")
    conda:
        "../envs/simmerge.yaml"
    params:
        bandit=get_bandit_params,
    script:
        "../workflow_scripts/bandit_replay.py"
