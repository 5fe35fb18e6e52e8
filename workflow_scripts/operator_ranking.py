# rule operator_ranking: per ordered pair the best operator, the ones tied with it within noise, the spread.
import pandas as pd

from simmerge.core.io import write_table, write_text
from simmerge.core.logs import log_to
from simmerge.evaluate.labels import seed_noise_note
from simmerge.evaluate.ranking import best_per_pair, operator_wins, pair_scores, summary_markdown

with log_to(snakemake.log[0]):
    ranking = snakemake.params.ranking
    labels = pd.read_parquet(snakemake.input.labels)
    best = best_per_pair(pair_scores(labels), pd.read_parquet(snakemake.input.outcomes), z=ranking["z"])
    wins = operator_wins(best, ranking["operators"])
    write_table(best, snakemake.output.best)
    write_table(wins, snakemake.output.wins)
    write_text(
        summary_markdown(best, wins, z=ranking["z"], seed_note=seed_noise_note(labels)), snakemake.output.summary
    )
