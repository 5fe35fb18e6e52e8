# rule probe_features: one probe pass over every task's probes + the weight sketch of one checkpoint.
from simmerge.catalog import checkpoint_dir, trusts_remote_code
from simmerge.logs import log_to
from simmerge.probes import probe_features

with log_to(snakemake.log[0]):
    probe_features(
        checkpoint_dir(snakemake.input.manifest),
        checkpoint_dir(snakemake.input.base),
        dict(zip(snakemake.params.tasks, snakemake.input.probes, strict=True)),
        snakemake.output[0],
        name=snakemake.wildcards.model,
        spec=snakemake.params.features,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        trust_remote_code=trusts_remote_code(snakemake.input.manifest),
    )
