# rule probe_pass: one checkpoint's probe pass over one task's probes.
from simmerge.catalog.build import checkpoint_dir, trusts_remote_code
from simmerge.core.logs import log_to
from simmerge.features.probe_pass import probe_task

with log_to(snakemake.log[0]):
    probe_task(
        checkpoint_dir(snakemake.input.manifest),
        snakemake.wildcards.task,
        snakemake.input.probes,
        snakemake.output[0],
        spec=snakemake.params.features,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        trust_remote_code=trusts_remote_code(snakemake.input.manifest),
    )
