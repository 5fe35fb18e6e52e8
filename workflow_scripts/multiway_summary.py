# rule multiway_summary: SimMerge's plan against every baseline on one candidate set.
from pathlib import Path

import pandas as pd

from simmerge.core.io import read_json, write_table
from simmerge.core.logs import log_to
from simmerge.evaluate.labels import path_checkpoint
from simmerge.merges.items import read_items
from simmerge.multiway.execution import read_expert_scores
from simmerge.multiway.planning import reference_scores, summarise_set

with log_to(snakemake.log[0]):
    tasks = snakemake.params.tasks
    expert_scores = read_expert_scores(snakemake.input.scores)
    scores = {Path(path).stem: read_json(path) for path in snakemake.input.node_scores}
    items = {Path(path).name.removesuffix(".items.parquet"): read_items(path) for path in snakemake.input.node_items}
    experts = {}
    for path in snakemake.input.expert_items:
        experts.setdefault(path_checkpoint(path), []).append(read_items(path))
    items |= {name: pd.concat(tables, ignore_index=True) for name, tables in experts.items()}
    table = summarise_set(
        read_json(snakemake.input.recipes),
        scores,
        read_json(snakemake.input.plan),
        expert_scores,
        reference_scores(expert_scores, list(expert_scores), tasks),
        items,
    )
    write_table(table.assign(set=snakemake.wildcards.mwset), snakemake.output[0])
