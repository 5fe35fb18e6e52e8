# rule multiway_node: one merge of a recipe tree, from expert checkpoints or earlier merged nodes.
from pathlib import Path

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.io import atomic_dir, write_json
from simmerge.core.logs import log_to
from simmerge.multiway.execution import merge_node

with log_to(snakemake.log[0]):
    node = snakemake.params.node
    inputs = [checkpoint_dir(path) if path.endswith("manifest.json") else Path(path) for path in snakemake.input.inputs]
    manifests = [path for path in snakemake.input.inputs if path.endswith("manifest.json")] + [snakemake.input.base]
    with atomic_dir(snakemake.output.merged) as merged:
        record = merge_node(
            node,
            inputs,
            checkpoint_dir(snakemake.input.base),
            merged,
            merge_seed=node["merge_seed"],
            threads=snakemake.threads,
            trust_remote_code=all(trusts_remote_code(path) for path in manifests),
        )
    write_json(record, snakemake.output.record)
