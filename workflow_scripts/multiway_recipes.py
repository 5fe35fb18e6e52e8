# checkpoint multiway_recipes: every merge tree to build and score for one candidate set (SimMerge and baselines).
import pandas as pd

from simmerge.core.io import read_json, write_json
from simmerge.core.logs import log_to
from simmerge.evaluate.selection import best_fixed_operator, candidate_table
from simmerge.merges.operators import load_operators
from simmerge.multiway.planning import build_recipes

with log_to(snakemake.log[0]):
    spec = snakemake.params.recipes
    best_fixed = best_fixed_operator(candidate_table(pd.read_parquet(snakemake.input.labels)))
    recipes = build_recipes(
        read_json(snakemake.input.plan),
        spec["candidates"],
        load_operators(spec["operators"]),
        max_size=spec["max_size"],
        best_fixed=best_fixed,
        all_at_once_operators=spec["all_at_once"],
        oracle_operators=spec["oracle_operators"] or [best_fixed],
        oracle_max_candidates=spec["oracle_max_candidates"],
        seed=spec["seed"],
        merge_seed=spec["merge_seed"],
    )
    write_json(recipes, snakemake.output[0])
