# SimMerge-bench: from a checkpoint catalog to a comparison of SimMerge against every fixed merge operator.
# Stages (one rules/*.smk each) in DAG order; the targets are at the end. Outputs: results/<run_name>/.


from snakemake.utils import min_version

import simmerge.core.config

min_version("9.0")

DEFAULT_CONFIG = "config/config.yaml"


# A --configfile on the command line replaces the embedded default instead of being merged into it: the
# catalogs are whole documents, and merging a smoke catalog into the default one would mix their entries.
# simmerge reads the default first: on a YAML mistake its message names the line and column, Snakemake's not even
# the file. (A --configfile is read by Snakemake before this file runs; `simmerge check FILE` names the line.)
if not workflow.overwrite_configfiles:
    with simmerge.core.config.exit_on_config_error():
        simmerge.core.config.read_config_file(DEFAULT_CONFIG)

    configfile: DEFAULT_CONFIG


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/catalog.smk"
include: "rules/features.smk"
include: "rules/merges.smk"
include: "rules/predictor.smk"
include: "rules/compare.smk"
include: "rules/multiway.smk"
include: "rules/bandit.smk"
include: "rules/report.smk"


# Gathers and tables of a few seconds run in the Snakemake process itself (`localrules`), not as cluster jobs:
# each would otherwise wait in the queue and for the executor's status checks far longer than it runs. That includes
# drawing an lm-eval task's documents (task_data), which reads the dataset where the Hugging Face caches are filled.
localrules:
    prefetch,
    skill_data,
    task_data,
    preflight,
    expert_scores_table,
    probe_features,
    pair_features,
    labels,
    operator_ranking,
    compare_summary,
    search,
    multiway_recipes,
    multiway_summary,
    multiway_table,
    results_page,


rule all:
    default_target: True
    input:
        get_final_targets(),


rule all_catalog:
    input:
        get_catalog_targets(),


rule all_features:
    input:
        get_feature_targets(),


rule all_labels:
    input:
        get_labels_targets(),


rule all_predictor:
    input:
        get_predictor_targets(),


rule all_compare:
    input:
        get_compare_targets(),


rule all_multiway:
    input:
        get_multiway_targets(),


rule all_bandit:
    input:
        get_bandit_targets(),
