# rule compare_summary: one row per evaluation protocol.
import pandas as pd

from simmerge.core.io import read_json, write_table
from simmerge.core.logs import log_to
from simmerge.evaluate.selection import SUMMARY_KEYS

with log_to(snakemake.log[0]):
    rows = []
    for path in snakemake.input:
        summary = read_json(path)
        fixed = summary.pop("fixed_operators", {})
        row = {"protocol": summary["protocol"], "title": summary["title"]}
        row.update({key: summary.get(key) for key in SUMMARY_KEYS})
        row["best_fixed_hindsight_policy"] = summary.get("best_fixed_hindsight_policy")
        row.update({f"fixed:{name}": score for name, score in fixed.items()})
        rows.append(row)
    write_table(pd.DataFrame(rows), snakemake.output[0])
