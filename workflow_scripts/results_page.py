# rule results_page: results/<run>/results.md, the run's results and costs in Markdown.
from simmerge.core.io import write_text
from simmerge.core.logs import log_to
from simmerge.report.results_page import machine_facts, results_page

with log_to(snakemake.log[0]):
    page = snakemake.params.page
    text = results_page(
        run_dir=page["run_dir"],
        facts=page["facts"],
        tasks=page["tasks"],
        machine=machine_facts(),
        experts=snakemake.input.experts,
        ranking=snakemake.input.ranking,
        cv=snakemake.input.cv,
        summaries=snakemake.input.summaries,
        units=snakemake.input.units,
        records=snakemake.input.records,
        # every job's benchmark file is an input named after its rule; the rules without jobs in this run have none
        benchmarks={rule: snakemake.input.get(rule, []) for rule in page["stages"]},
        stages=page["stages"],
        multiway=snakemake.input.multiway[0] if snakemake.input.multiway else None,
        bandit=snakemake.input.bandit,
        search=snakemake.input.search_summary,
        transfers=snakemake.input.transfer_summaries,
        provenance=snakemake.input.provenance,
    )
    write_text(text, snakemake.output[0])
