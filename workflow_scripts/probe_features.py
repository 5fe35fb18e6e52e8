# rule probe_features: one checkpoint's model summary, gathered from its per-task probe passes and weight sketch.
from simmerge.core.logs import log_to
from simmerge.features.summary import assemble_summary

with log_to(snakemake.log[0]):
    assemble_summary(
        dict(zip(snakemake.params.tasks, snakemake.input.probes, strict=True)),
        snakemake.input.sketch,
        snakemake.output[0],
        name=snakemake.wildcards.model,
    )
