# rule cma_search: CMA-ES over one pair's merge parameters, real merges scored on the pair's search items.
import pandas as pd

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.io import write_json
from simmerge.core.logs import log_to
from simmerge.core.runtime import runtime_settings
from simmerge.evaluate.methods import item_halves, split_digest
from simmerge.evaluate.selection import unit_of
from simmerge.merges.cma import Genome, best_parent_metrics, cma_merge_search
from simmerge.run import TASK_DIR

with log_to(snakemake.log[0]):
    spec = snakemake.params.cma
    a, b = snakemake.wildcards.a, snakemake.wildcards.b
    runtime = runtime_settings(snakemake.config)
    labels = pd.read_parquet(snakemake.input.labels)
    _, items, halves = item_halves(labels, pd.read_parquet(snakemake.input.outcomes), spec["split_seed"])
    unit = unit_of(a, b)
    if unit not in items:
        raise ValueError(
            f"pair {unit}: its merges were not all scored on the same items, so the methods comparison has no "
            f"search and held-out halves for it; check the labels of ({a}, {b}) in {snakemake.input.labels}"
        )
    search, held_out = halves[unit]
    keys = items[unit].keys
    record = cma_merge_search(
        Genome(spec["genome"]),
        checkpoint_dir(snakemake.input.a),
        checkpoint_dir(snakemake.input.b),
        checkpoint_dir(snakemake.input.base),
        search_keys=keys.iloc[search].reset_index(drop=True),
        held_out_keys=keys.iloc[held_out].reset_index(drop=True),
        best_parent=best_parent_metrics(labels, a, b),
        task_dir=TASK_DIR,
        data_files=dict(zip(spec["tasks"], snakemake.input.eval, strict=True)),
        budget=spec["budget"],
        popsize=spec["popsize"],
        sigma0=spec["sigma0"],
        seed=spec["seed"],
        items=spec["items"],
        threads=snakemake.threads,
        batch_size=runtime.batch_size,
        scratch_dir=runtime.scratch_dir,
        trust_remote_code=all(
            trusts_remote_code(path) for path in (snakemake.input.a, snakemake.input.b, snakemake.input.base)
        ),
        **snakemake.params.scoring,
    )
    digest = split_digest(items[unit], halves[unit])
    write_json({**record, "a": a, "b": b, "unit": unit, "split_digest": digest}, snakemake.output.record)
