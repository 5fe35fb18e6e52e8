# rule merge_score: one operator on one pair: mergekit merge, lm-eval scores, normalised by the better parent.

from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.io import write_json, write_text
from simmerge.core.logs import log_to
from simmerge.core.runtime import runtime_settings
from simmerge.merges.items import write_items
from simmerge.merges.merging import merge_score
from simmerge.merges.operators import Operator
from simmerge.merges.scoring import read_scores
from simmerge.run import TASK_DIR

with log_to(snakemake.log[0]):
    merge = snakemake.params.merge
    runtime = runtime_settings(snakemake.config)
    drift = None
    if merge["drift"]:
        parts = iter(snakemake.input.drift_parts)
        homes = merge["drift"]["homes"]
        drift = {
            "parent_parts": {name: {task: next(parts) for task in own} for name, own in homes.items()},
            "probe_files": dict(
                zip(dict.fromkeys(t for own in homes.values() for t in own), snakemake.input.drift_probes, strict=True)
            ),
            "spec": merge["drift"]["features"],
            "seed": merge["drift"]["seed"],
        }
    record = merge_score(
        Operator.model_validate(merge["operator"]),
        checkpoint_dir(snakemake.input.a),
        checkpoint_dir(snakemake.input.b),
        checkpoint_dir(snakemake.input.base),
        parent_scores=(
            read_scores(snakemake.input.a_scores)[snakemake.wildcards.a],
            read_scores(snakemake.input.b_scores)[snakemake.wildcards.b],
        ),
        task_dir=TASK_DIR,
        data_files=dict(zip(merge["tasks"], snakemake.input.eval, strict=True)),
        seeds=merge["seeds"],
        threads=snakemake.threads,
        batch_size=runtime.batch_size,
        scratch_dir=runtime.scratch_dir,
        keep_dir=snakemake.output.get("merged"),
        trust_remote_code=all(
            trusts_remote_code(path) for path in (snakemake.input.a, snakemake.input.b, snakemake.input.base)
        ),
        manifests=(snakemake.input.a, snakemake.input.b, snakemake.input.base),
        drift=drift,
        **snakemake.params.scoring,
    )
    write_items(record.pop("items"), snakemake.output.outcomes)
    write_text(record["config_yaml"], snakemake.output.config)
    write_json({**record, "a": snakemake.wildcards.a, "b": snakemake.wildcards.b}, snakemake.output.record)
