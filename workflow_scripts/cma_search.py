# rule cma_search: CMA-ES over one pair's merge parameters, real merges scored on the pair's search items.
import pandas as pd

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.io import write_json
from simmerge.core.logs import log_to
from simmerge.core.runtime import runtime_settings
from simmerge.evaluate.methods import cma_search_record
from simmerge.run import TASK_DIR

with log_to(snakemake.log[0]):
    spec = snakemake.params.cma
    runtime = runtime_settings(snakemake.config)
    record = cma_search_record(
        pd.read_parquet(snakemake.input.labels),
        pd.read_parquet(snakemake.input.outcomes),
        snakemake.wildcards.a,
        snakemake.wildcards.b,
        genome=spec["genome"],
        split_seed=spec["split_seed"],
        a_dir=checkpoint_dir(snakemake.input.a),
        b_dir=checkpoint_dir(snakemake.input.b),
        base_dir=checkpoint_dir(snakemake.input.base),
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
    write_json(record, snakemake.output.record)
