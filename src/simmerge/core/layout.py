"""Where a run's files are: every path under ``results/<run_name>/``, defined once.

The rules (``rules/common.smk``), the workflow scripts, the command line, ``simmerge recommend`` and the bandit's
live loop all take their paths from a :class:`RunLayout`, so renaming a path here renames it everywhere, and a
workflow test checks every rule's declared outputs against it.

Every method takes names as strings, so one method gives three things: a file (``layout.merge_record("fr", "de",
"ties")``), the rule's Snakemake pattern (``layout.merge_record("{a}", "{b}", "{op}")``) and a glob for
:meth:`RunLayout.glob` (``layout.merge_record("*", "*", "*")``).

Examples
--------
>>> layout = RunLayout.of_run("smoke")
>>> str(layout.merge_record("fr", "de", "ties"))
'results/smoke/merges/fr__de/ties.json'
>>> str(layout.pair_features("{a}", "{b}"))
'results/smoke/features/pairs/{a}__{b}.parquet'
>>> str(layout.benchmark("probe_pass", "fr", "n2w_fr"))
'results/smoke/benchmarks/probe_pass/fr/n2w_fr.tsv'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Where runs go, relative to the workflow directory.
RESULTS = Path("results")
# The file that records a checkpoint directory's source and content (simmerge.catalog.manifest writes it).
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class RunLayout:
    """The files of one run, below ``root`` (``results/<run_name>``).

    Parameters
    ----------
    root : path
        The run's folder.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of_run(cls, run_name: str, results: str | os.PathLike = RESULTS) -> RunLayout:
        """The layout of the run named ``run_name`` (the config's ``run_name``) under ``results``."""
        return cls(Path(results) / run_name)

    @staticmethod
    def pair(a: str, b: str) -> str:
        """The name of the ordered pair (a, b) in file names: ``a__b``."""
        return f"{a}__{b}"

    def glob(self, pattern: Path) -> list[Path]:
        """The files that exist now and match ``pattern``, a path of this layout built with ``"*"`` names.

        Examples
        --------
        >>> RunLayout("results/smoke").glob(RunLayout("results/smoke").model_summary("*"))  # doctest: +SKIP
        [PosixPath('results/smoke/features/models/de.npz'), ...]
        """
        return sorted(self.root.glob(str(Path(pattern).relative_to(self.root))))

    # ---- catalog stage --------------------------------------------------------------------------------------

    def task_data(self, task: str, split: str) -> Path:
        """``data/<task>/<split>.jsonl``: a task's ``train``, ``eval`` or ``probe`` split (rule ``skill_data`` for a
        built-in skill, ``task_data`` for an lm-eval task)."""
        return self.root / "data" / task / f"{split}.jsonl"

    def task_record(self, task: str) -> Path:
        """``data/<task>/task.json``: how an lm-eval task is rebuilt and which documents are scored (``task_data``)."""
        return self.root / "data" / task / "task.json"

    def checkpoint_dir(self, name: str) -> Path:
        """``checkpoints/<name>/``: a checkpoint built, fetched or recorded by the run."""
        return self.root / "checkpoints" / name

    def checkpoint_manifest(self, name: str) -> Path:
        """``checkpoints/<name>/manifest.json``: the checkpoint rules' declared output."""
        return self.checkpoint_dir(name) / MANIFEST_NAME

    @property
    def prefetch_record(self) -> Path:
        """``checkpoints/prefetch.json`` (rule ``prefetch``): what was put into the Hugging Face caches, and whether
        it was downloaded or already there."""
        return self.root / "checkpoints" / "prefetch.json"

    @property
    def preflight(self) -> Path:
        """``checkpoints/preflight.json`` (rule ``preflight``): the checkpoints and tasks checked before any
        scoring, training or merging job; every such job waits for it."""
        return self.root / "checkpoints" / "preflight.json"

    def expert_scores(self, name: str, task: str) -> Path:
        """``scores/experts/<name>/<task>.json``: lm-eval score of a checkpoint on one task (``expert_scores``)."""
        return self.root / "scores" / "experts" / name / f"{task}.json"

    def expert_items(self, name: str, task: str) -> Path:
        """``scores/experts/<name>/<task>.items.parquet``: the per-item outcomes behind that score."""
        return self.root / "scores" / "experts" / name / f"{task}.items.parquet"

    @property
    def expert_scores_csv(self) -> Path:
        """``scores/experts.csv``: checkpoint × task table of primary scores (``expert_scores_table``)."""
        return self.root / "scores" / "experts.csv"

    @property
    def expert_scores_md(self) -> Path:
        """``scores/experts.md``: the same table in Markdown."""
        return self.root / "scores" / "experts.md"

    # ---- features stage -------------------------------------------------------------------------------------

    def probe_part(self, name: str, task: str) -> Path:
        """``features/models/<name>/probes/<task>.npz``: one checkpoint's probe pass on one task."""
        return self.root / "features" / "models" / name / "probes" / f"{task}.npz"

    def weight_sketch(self, name: str) -> Path:
        """``features/models/<name>/sketch.npz``: the sketch of a checkpoint's task vector."""
        return self.root / "features" / "models" / name / "sketch.npz"

    def model_summary(self, name: str) -> Path:
        """``features/models/<name>.npz``: a checkpoint's model summary (rule ``probe_features``)."""
        return self.root / "features" / "models" / f"{name}.npz"

    def pair_features(self, a: str, b: str) -> Path:
        """``features/pairs/<a>__<b>.parquet``: the feature rows of an ordered pair, one per task."""
        return self.root / "features" / "pairs" / f"{self.pair(a, b)}.parquet"

    def recommend_summary(self, name: str) -> Path:
        """``features/recommend/<name>.npz``: ``simmerge recommend``'s summary of a checkpoint outside the catalog."""
        return self.root / "features" / "recommend" / f"{name}.npz"

    # ---- merges stage ---------------------------------------------------------------------------------------

    def merge_record(self, a: str, b: str, op: str) -> Path:
        """``merges/<a>__<b>/<op>.json``: the record of one operator on one ordered pair (rule ``merge_score``)."""
        return self.root / "merges" / self.pair(a, b) / f"{op}.json"

    def merge_items(self, a: str, b: str, op: str) -> Path:
        """``merges/<a>__<b>/<op>.items.parquet``: the per-item outcomes of every seed of that merge."""
        return self.root / "merges" / self.pair(a, b) / f"{op}.items.parquet"

    def merge_config(self, a: str, b: str, op: str) -> Path:
        """``merges/<a>__<b>/<op>.mergekit.yml``: the exact mergekit YAML of that merge."""
        return self.root / "merges" / self.pair(a, b) / f"{op}.mergekit.yml"

    def merged_checkpoint(self, a: str, b: str, op: str) -> Path:
        """``merges/<a>__<b>/<op>.merged/``: the merged checkpoint, kept only with ``merges.keep_merged``."""
        return self.root / "merges" / self.pair(a, b) / f"{op}.merged"

    @property
    def labels_parquet(self) -> Path:
        """``labels.parquet``: (a, b, task, operator) → features + normalised score (rule ``labels``)."""
        return self.root / "labels.parquet"

    @property
    def label_items(self) -> Path:
        """``label_items.parquet``: the per-item normalised outcomes behind every label row (rule ``labels``)."""
        return self.root / "label_items.parquet"

    @property
    def labels_csv(self) -> Path:
        """``labels.csv``: the same table as CSV."""
        return self.root / "labels.csv"

    @property
    def ranking_best_per_pair(self) -> Path:
        """``ranking/best_per_pair.csv`` (rule ``operator_ranking``)."""
        return self.root / "ranking" / "best_per_pair.csv"

    @property
    def ranking_operator_wins(self) -> Path:
        """``ranking/operator_wins.csv``."""
        return self.root / "ranking" / "operator_wins.csv"

    @property
    def ranking_summary(self) -> Path:
        """``ranking/summary.md``."""
        return self.root / "ranking" / "summary.md"

    # ---- predictor and comparison ---------------------------------------------------------------------------

    @property
    def predictor_model(self) -> Path:
        """``predictor/model.skops``: the fitted predictor (rule ``predictor``)."""
        return self.root / "predictor" / "model.skops"

    @property
    def predictor_cv(self) -> Path:
        """``predictor/cv.json``: the family choice and its cross-validated scores."""
        return self.root / "predictor" / "cv.json"

    def comparison_units(self, protocol: str) -> Path:
        """``compare/<protocol>/units.csv`` (rule ``compare``)."""
        return self.root / "compare" / protocol / "units.csv"

    def comparison_candidates(self, protocol: str) -> Path:
        """``compare/<protocol>/candidates.csv``."""
        return self.root / "compare" / protocol / "candidates.csv"

    def comparison_folds(self, protocol: str) -> Path:
        """``compare/<protocol>/folds.csv``."""
        return self.root / "compare" / protocol / "folds.csv"

    def comparison_importances(self, protocol: str) -> Path:
        """``compare/<protocol>/importances.csv``: permutation importances on the held-out rows."""
        return self.root / "compare" / protocol / "importances.csv"

    def comparison_summary(self, protocol: str) -> Path:
        """``compare/<protocol>/summary.json``."""
        return self.root / "compare" / protocol / "summary.json"

    @property
    def compare_summary(self) -> Path:
        """``compare/summary.csv``: one row per protocol (rule ``compare_summary``)."""
        return self.root / "compare" / "summary.csv"

    def transfer_units(self, source: str) -> Path:
        """``transfer/from_<source>/units.csv``: the source run's predictor on this run's pairs (rule ``transfer``)."""
        return self.root / "transfer" / f"from_{source}" / "units.csv"

    def transfer_summary(self, source: str) -> Path:
        """``transfer/from_<source>/summary.json`` (rule ``transfer``)."""
        return self.root / "transfer" / f"from_{source}" / "summary.json"

    @property
    def search_units(self) -> Path:
        """``search/units.csv``: per pair and method, the choice of each search and SimMerge + k (rule ``search``)."""
        return self.root / "search" / "units.csv"

    @property
    def search_summary(self) -> Path:
        """``search/summary.csv``: per method, held-out score, regret, merges and items per pair (rule ``search``)."""
        return self.root / "search" / "summary.csv"

    def cma_record(self, a: str, b: str) -> Path:
        """``search/cma/<a>__<b>.json``: CMA-ES over the pair's merge parameters with real merges (rule
        ``cma_search``)."""
        return self.root / "search" / "cma" / f"{self.pair(a, b)}.json"

    # ---- multi-way merges -----------------------------------------------------------------------------------

    def multiway_plan(self, mwset: str) -> Path:
        """``multiway/<set>/plan.json``: SimMerge's plan for a candidate set (rule ``multiway_plan``)."""
        return self.root / "multiway" / mwset / "plan.json"

    def multiway_plan_predictions(self, mwset: str) -> Path:
        """``multiway/<set>/plan_predictions.csv``."""
        return self.root / "multiway" / mwset / "plan_predictions.csv"

    def multiway_plan_probes(self, mwset: str) -> Path:
        """``multiway/<set>/plan_probes/``: probe passes of the plan's intermediate merges."""
        return self.root / "multiway" / mwset / "plan_probes"

    def multiway_recipes(self, mwset: str) -> Path:
        """``multiway/<set>/recipes.json``: every merge tree to build (checkpoint ``multiway_recipes``)."""
        return self.root / "multiway" / mwset / "recipes.json"

    def multiway_node(self, mwset: str, node: str) -> Path:
        """``multiway/<set>/nodes/<node>/``: one merged node of a recipe tree (rule ``multiway_node``)."""
        return self.root / "multiway" / mwset / "nodes" / node

    def multiway_node_record(self, mwset: str, node: str) -> Path:
        """``multiway/<set>/nodes/<node>.json``: that merge's record."""
        return self.root / "multiway" / mwset / "nodes" / f"{node}.json"

    def multiway_node_scores(self, mwset: str, node: str) -> Path:
        """``multiway/<set>/scores/<node>.json``: lm-eval scores of a node (rule ``multiway_score``)."""
        return self.root / "multiway" / mwset / "scores" / f"{node}.json"

    def multiway_node_items(self, mwset: str, node: str) -> Path:
        """``multiway/<set>/scores/<node>.items.parquet``: the per-item outcomes behind a node's scores."""
        return self.root / "multiway" / mwset / "scores" / f"{node}.items.parquet"

    def multiway_set_summary(self, mwset: str) -> Path:
        """``multiway/<set>/summary.csv``: the plan against every baseline (rule ``multiway_summary``)."""
        return self.root / "multiway" / mwset / "summary.csv"

    @property
    def multiway_summary(self) -> Path:
        """``multiway/summary.csv``: every set in one table (rule ``multiway_table``)."""
        return self.root / "multiway" / "summary.csv"

    # ---- bandit and report ----------------------------------------------------------------------------------

    @property
    def bandit_replay(self) -> Path:
        """``bandit/replay.csv`` (rule ``bandit_replay``)."""
        return self.root / "bandit" / "replay.csv"

    @property
    def bandit_summary(self) -> Path:
        """``bandit/summary.csv``."""
        return self.root / "bandit" / "summary.csv"

    @property
    def bandit_ledger(self) -> Path:
        """``bandit/ledger.sqlite``: the rounds of ``simmerge bandit --live``."""
        return self.root / "bandit" / "ledger.sqlite"

    def bandit_round_items(self, index: int | str) -> Path:
        """``bandit/rounds/<index>.items.parquet``: the per-item outcomes of one live round's merge."""
        return self.root / "bandit" / "rounds" / f"{index}.items.parquet"

    @property
    def report(self) -> Path:
        """``report.html`` (rule ``report``)."""
        return self.root / "report.html"

    @property
    def results_page(self) -> Path:
        """``results.md`` (rule ``results_page``): the run's results and costs in Markdown."""
        return self.root / "results.md"

    # ---- every rule's log and benchmark ---------------------------------------------------------------------

    def log(self, rule: str, *key: str) -> Path:
        """``logs/<rule>/<key…>.log``: a job's log, ``key`` its wildcards in the rule's order."""
        return self.root / "logs" / rule / f"{Path(*key)}.log"

    def benchmark(self, rule: str, *key: str) -> Path:
        """``benchmarks/<rule>/<key…>.tsv``: a job's Snakemake benchmark (wall time, peak memory)."""
        return self.root / "benchmarks" / rule / f"{Path(*key)}.tsv"


__all__ = ["MANIFEST_NAME", "RESULTS", "RunLayout"]
