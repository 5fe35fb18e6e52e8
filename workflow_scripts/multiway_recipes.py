# checkpoint multiway_recipes: every merge tree to build and score for one candidate set (SimMerge and baselines).
import pandas as pd

from simmerge.io import read_json, write_json
from simmerge.logs import log_to
from simmerge.multiway import build_recipes
from simmerge.operators import load_operators
from simmerge.selection import best_fixed_operator, candidate_table

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
