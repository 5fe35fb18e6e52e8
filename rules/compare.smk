# Compare stage: SimMerge's choices against every fixed policy (operator + order rule), the per-unit oracle and
# random choice, under each protocol of simmerge.core.config.PROTOCOLS (held-out checkpoint groups, held-out tasks
# for already-merged pairs, cold start).


rule compare:
    input:
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
    output:
        units=LAYOUT.comparison_units("{protocol}"),
        candidates=LAYOUT.comparison_candidates("{protocol}"),
        folds=LAYOUT.comparison_folds("{protocol}"),
        summary=LAYOUT.comparison_summary("{protocol}"),
        importances=LAYOUT.comparison_importances("{protocol}"),
    log:
        LAYOUT.log("compare", "{protocol}"),
    benchmark:
        LAYOUT.benchmark("compare", "{protocol}")
    conda:
        "../envs/simmerge.yaml"
    params:
        compare=get_compare_params,
    script:
        "../workflow_scripts/compare.py"


rule compare_summary:
    input:
        expand(
            LAYOUT.comparison_summary("{protocol}"),
            protocol=simmerge.core.config.PROTOCOLS,
        ),
    output:
        report(
            LAYOUT.compare_summary,
            caption="../report/compare_summary.rst",
            category="Comparison",
        ),
    log:
        LAYOUT.log("compare", "summary"),
    benchmark:
        LAYOUT.benchmark("compare", "summary")
    conda:
        "../envs/simmerge.yaml"
    script:
        "../workflow_scripts/compare_summary.py"


# Selection methods (predictor.methods; simmerge.evaluate.methods, found through the entry-point group
# simmerge.selection_methods): SimMerge, SimMerge + k, successive halving, the best fixed policy, random choice, the
# oracle and any installed method of the user's, fitted on the same held-out checkpoint folds; each pair's items
# split into a search half (what a method may evaluate, its cost counted) and a held-out half (its score).
rule search:
    input:
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
        cma=get_cma_targets(),
    output:
        units=LAYOUT.search_units,
        summary=LAYOUT.search_summary,
    log:
        LAYOUT.log("search", "all"),
    benchmark:
        LAYOUT.benchmark("search", "all")
    conda:
        "../envs/simmerge.yaml"
    params:
        search=get_search_params,
    script:
        "../workflow_scripts/search.py"


# CMA-ES over one pair's merge parameters (predictor.cma_search), every candidate a real mergekit merge scored by
# lm-eval on the pair's search items; each generation's best is scored on the held-out items (simmerge.merges.cma).
rule cma_search:
    input:
        unpack(get_cma_search_input),
    output:
        record=LAYOUT.cma_record("{a}", "{b}"),
    log:
        LAYOUT.log("cma_search", LAYOUT.pair("{a}", "{b}")),
    benchmark:
        LAYOUT.benchmark("cma_search", LAYOUT.pair("{a}", "{b}"))
    conda:
        "../envs/simmerge.yaml"
    # one thread per job, as merge_score: the merges' magnitude selection runs on one core
    threads: 1
    resources:
        **sized("cma_search"),
    params:
        cma=get_cma_search_params,
        scoring=get_scoring_params,
    script:
        "../workflow_scripts/cma_search.py"


# Transfer: a finished run's fitted predictor (predictor.transfer_from), unchanged, on this run's pairs and labels,
# against the source's best fixed policy and this run's in hindsight (simmerge.evaluate.transfer).
rule transfer:
    input:
        unpack(get_transfer_input),
        labels=LAYOUT.labels_parquet,
        outcomes=LAYOUT.label_items,
    output:
        units=LAYOUT.transfer_units("{source}"),
        summary=LAYOUT.transfer_summary("{source}"),
    log:
        LAYOUT.log("transfer", "{source}"),
    benchmark:
        LAYOUT.benchmark("transfer", "{source}")
    wildcard_constraints:
        source=alternation(CATALOG.transfer_sources),
    conda:
        "../envs/simmerge.yaml"
    params:
        transfer=get_transfer_params,
    script:
        "../workflow_scripts/transfer.py"
