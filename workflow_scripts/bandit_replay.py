# rule bandit_replay: every policy on simulated streams of merge requests drawn from the labels.
import pandas as pd

from simmerge.core.io import write_table
from simmerge.core.logs import log_to
from simmerge.core.runtime import native_threads
from simmerge.features.definitions import feature_names
from simmerge.online.bandit import Arrival, regret_summary, replay

with log_to(snakemake.log[0]), native_threads(snakemake.threads):
    spec = snakemake.params.bandit
    table = replay(
        pd.read_parquet(snakemake.input.labels),
        feature_names(),
        arrivals=[
            Arrival(**{k: tuple(v) if isinstance(v, list) else v for k, v in a.items()}) for a in spec["arrivals"]
        ],
        rounds=spec["rounds"],
        seeds=spec["seeds"],
        policy=spec["policy"],
        alpha=spec["alpha"],
        epsilon=spec["epsilon"],
        offline_family=spec["offline_family"],
    )
    write_table(table, snakemake.output.replay)
    write_table(regret_summary(table), snakemake.output.summary)
