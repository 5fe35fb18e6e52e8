"""Online SimMerge: a contextual bandit over merge operators, for catalogs whose tasks, checkpoints and operators grow.

A **request** is an ordered expert pair (a, b) and a task t; the **arms** are the operators available at that
moment (a is the anchor of an order-sensitive one); the **context** is the pair's feature vector on t; the
**reward** is the merge's normalised score on t. The policy is MABWiser's LinUCB (or LinTS): one ridge model per
arm with an exploration bonus, so an operator that arrives mid-stream starts with a wide bonus and is tried.

:func:`replay` simulates a stream on a finished labels table: requests are drawn from what has arrived by that
round (the arrival schedule is in the config), every policy answers the same requests, and its regret is the
oracle's reward minus its own. Baselines: the offline predictor fitted on what was there at the start and then
frozen, ε-greedy, uniform random, the best fixed operator of the start, and the oracle.
"""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from mabwiser.mab import MAB, LearningPolicy

from simmerge.catalog.build import checkpoint_dir
from simmerge.core.config import ConfigError
from simmerge.core.layout import RunLayout
from simmerge.core.runtime import runtime_settings
from simmerge.evaluate.predictor import TARGET, SimMergePredictor
from simmerge.evaluate.stats import best_fixed_operator
from simmerge.features.definitions import feature_names
from simmerge.merges.items import write_items
from simmerge.merges.merging import merge_score
from simmerge.merges.scoring import read_checkpoint_scores
from simmerge.run import load

POLICIES = ("bandit", "offline_frozen", "epsilon_greedy", "random", "best_fixed", "oracle")


@dataclass(frozen=True)
class Arrival:
    """What becomes available at a fraction of the stream."""

    at: float
    checkpoints: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()


class World:
    """The labels table seen as a stream: who is available when, and the reward of every (request, arm)."""

    def __init__(self, labels: pd.DataFrame, feature_columns: Sequence[str], arrivals: Sequence[Arrival]) -> None:
        rows = labels[labels[TARGET].notna()]
        self.features = list(feature_columns)
        self.rewards = rows.pivot_table(index=["a", "b", "task"], columns="operator", values=TARGET, aggfunc="first")
        contexts = rows.drop_duplicates(["a", "b", "task"]).set_index(["a", "b", "task"])[self.features]
        self.contexts = contexts.loc[self.rewards.index]
        self.arrivals = sorted(arrivals, key=lambda arrival: arrival.at)
        known = {
            "checkpoints": set(rows["a"]) | set(rows["b"]),
            "tasks": set(rows["task"]),
            "operators": set(rows["operator"]),
        }
        for arrival in self.arrivals:
            for kind in known:
                unknown = sorted(set(getattr(arrival, kind)) - known[kind])
                if unknown:
                    raise ValueError(
                        f"bandit.arrivals at {arrival.at}: {kind} {unknown} are not in the labels; "
                        f"known: {', '.join(sorted(known[kind]))}"
                    )
        late = {kind: {name for arrival in self.arrivals for name in getattr(arrival, kind)} for kind in known}
        self.initial = {kind: known[kind] - late[kind] for kind in known}
        self.standardised = standardise(self.contexts)

    def available(self, fraction: float) -> dict[str, set[str]]:
        """Checkpoints, tasks and operators present once ``fraction`` of the stream has passed."""
        present = {kind: set(names) for kind, names in self.initial.items()}
        for arrival in self.arrivals:
            if arrival.at <= fraction:
                for kind in present:
                    present[kind] |= set(getattr(arrival, kind))
        return present

    def requests(self, present: Mapping[str, set[str]]) -> list[tuple[str, str, str]]:
        """Requests whose pair, task and every present arm have a reward."""
        arms = sorted(present["operators"])
        index = self.rewards.index
        mask = (
            index.get_level_values("a").isin(present["checkpoints"])
            & index.get_level_values("b").isin(present["checkpoints"])
            & index.get_level_values("task").isin(present["tasks"])
        )
        table = self.rewards.loc[mask, arms]
        return list(table.index[table.notna().all(axis=1)])

    def initial_rows(self) -> pd.DataFrame:
        """Label rows of what is present at the start: the offline data every policy may warm-start from."""
        present = self.available(0.0)
        rows = []
        for request in self.requests(present):
            for arm in sorted(present["operators"]):
                rows.append({"request": request, "operator": arm, "reward": float(self.rewards.at[request, arm])})
        return pd.DataFrame(rows, columns=["request", "operator", "reward"])


def standardise(contexts: pd.DataFrame) -> pd.DataFrame:
    """Bandit contexts: features standardised over every pair (missing → 0) plus a constant ``bias`` column.

    Features are unlabelled inputs, so standardising over every pair leaks no reward. LinUCB's per-arm ridge has
    no intercept: the constant column carries each arm's mean reward.
    """
    mean = contexts.mean()
    scale = contexts.std().replace(0, 1).fillna(1)
    return ((contexts - mean) / scale).fillna(0.0).assign(bias=1.0)


def stream(world: World, rounds: int, seed: int) -> list[tuple[tuple[str, str, str], list[str]]]:
    """The requests of one replay, each with the arms present at its round."""
    rng = random.Random(seed)
    out = []
    for index in range(rounds):
        present = world.available(index / rounds)
        requests = world.requests(present)
        if not requests:
            raise ValueError(f"no request has every present arm's reward at round {index}; check bandit.arrivals")
        out.append((requests[rng.randrange(len(requests))], sorted(present["operators"])))
    return out


# --------------------------------------------------------------------------------------------------------------
# Policies


class OnlinePolicy:
    """A MABWiser bandit (LinUCB, LinTS, ε-greedy or random) whose arms are added as they arrive.

    Arms are only ever added, so the arms MABWiser knows are exactly the present ones and its own ``predict``
    (exploration included) chooses among them.
    """

    def __init__(self, kind: str, *, alpha: float, epsilon: float, seed: int) -> None:
        factories = {
            "linucb": lambda: LearningPolicy.LinUCB(alpha=alpha),
            "lints": lambda: LearningPolicy.LinTS(alpha=alpha),
            "epsilon_greedy": lambda: LearningPolicy.EpsilonGreedy(epsilon=epsilon),
            "random": lambda: LearningPolicy.Random(),
        }
        if kind not in factories:
            raise ValueError(f"unknown bandit policy {kind!r}; choose from {', '.join(factories)}")
        self.contextual = kind in ("linucb", "lints")
        self.learning = factories[kind]()
        self.seed = seed
        self.mab = None

    def learn(self, arms: Sequence[str], rewards: Sequence[float], contexts: np.ndarray) -> None:
        """``fit`` on the first batch (its arms become the policy's), ``partial_fit`` afterwards."""

        contexts = contexts if self.contextual else None
        if self.mab is None:
            self.mab = MAB(sorted(set(arms)), self.learning, seed=self.seed)
            self.mab.fit(list(arms), list(rewards), contexts=contexts)
        else:
            self.mab.partial_fit(list(arms), list(rewards), contexts=contexts)

    def add_arms(self, arms: Sequence[str]) -> None:
        for arm in arms:
            if arm not in self.mab.arms:
                self.mab.add_arm(arm)

    def choose(self, context: np.ndarray) -> str:
        if self.mab is None:
            raise ValueError("the policy has no data: warm-start it before the first request")
        return self.mab.predict(context.reshape(1, -1) if self.contextual else None)


def replay(
    labels: pd.DataFrame,
    feature_columns: Sequence[str],
    *,
    arrivals: Sequence[Arrival],
    rounds: int,
    seeds: Sequence[int],
    policy: str = "linucb",
    alpha: float = 1.0,
    epsilon: float = 0.1,
    offline_family: str = "ridge",
) -> pd.DataFrame:
    """Every policy on the same simulated streams: one row per (seed, policy, round).

    The bandit, ε-greedy and random start from the label rows present at round 0 (warm start) and learn from
    each reward they receive; the offline predictor and the best fixed operator are fitted on those same rows
    once and never updated, so they cannot choose an operator that arrives later.

    Returns
    -------
    pandas.DataFrame
        ``seed``, ``policy``, ``round``, ``a``, ``b``, ``task``, ``arm``, ``reward``, ``oracle_reward``,
        ``regret`` and ``cumulative_regret``.
    """

    world = World(labels, feature_columns, arrivals)
    initial = world.initial_rows()
    if initial.empty:
        raise ValueError("nothing is present at round 0 to warm-start from; let some checkpoints and tasks arrive at 0")
    initial_contexts = world.standardised.loc[list(initial["request"])].to_numpy()
    offline_operators = sorted(world.initial["operators"])
    training = (
        world.contexts.loc[list(initial["request"])]
        .reset_index(drop=True)
        .assign(operator=list(initial["operator"]), **{TARGET: list(initial["reward"])})
    )
    offline = SimMergePredictor(
        family=offline_family, operators=offline_operators, random_state=seeds[0] if seeds else 0
    )
    offline.fit(training[[*world.features, "operator"]], training[TARGET])
    # groupby sorts the operators by name, so an exact tie goes to the first name
    best_fixed = best_fixed_operator(initial.groupby("operator")["reward"].mean())

    records = []
    for seed in seeds:
        online = {
            "bandit": OnlinePolicy(policy, alpha=alpha, epsilon=epsilon, seed=seed),
            "epsilon_greedy": OnlinePolicy("epsilon_greedy", alpha=alpha, epsilon=epsilon, seed=seed),
            "random": OnlinePolicy("random", alpha=alpha, epsilon=epsilon, seed=seed),
        }
        for learner in online.values():
            learner.learn(list(initial["operator"]), list(initial["reward"]), initial_contexts)
        for index, (request, arms) in enumerate(stream(world, rounds, seed)):
            context = world.standardised.loc[request].to_numpy()
            rewards = world.rewards.loc[request, arms].astype(float)
            known = [arm for arm in arms if arm in offline_operators]
            candidates = pd.DataFrame([world.contexts.loc[request]] * len(known)).assign(operator=known)
            predicted = offline.predict(candidates[[*world.features, "operator"]])
            picks = {
                "offline_frozen": known[int(np.argmax(predicted))],
                "best_fixed": best_fixed,
                "oracle": max(arms, key=lambda arm: (rewards[arm], arm)),
            }
            for name, learner in online.items():
                learner.add_arms(arms)
                picks[name] = learner.choose(context)
                learner.learn([picks[name]], [rewards[picks[name]]], context.reshape(1, -1))
            for name in POLICIES:
                records.append(
                    {
                        "seed": seed,
                        "policy": name,
                        "round": index,
                        "a": request[0],
                        "b": request[1],
                        "task": request[2],
                        "arm": picks[name],
                        "reward": float(rewards[picks[name]]),
                        "oracle_reward": float(rewards.max()),
                    }
                )
    table = pd.DataFrame(records)
    table["regret"] = table["oracle_reward"] - table["reward"]
    table["cumulative_regret"] = table.groupby(["seed", "policy"])["regret"].cumsum()
    return table


def regret_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Final cumulative regret and mean reward per policy: mean and standard deviation over seeds."""
    last = table[table["round"] == table["round"].max()]
    per_seed = table.groupby(["policy", "seed"])["reward"].mean().rename("mean_reward").reset_index()
    per_seed = per_seed.merge(last[["policy", "seed", "cumulative_regret"]], on=["policy", "seed"])
    summary = per_seed.groupby("policy").agg(
        cumulative_regret=("cumulative_regret", "mean"),
        cumulative_regret_sd=("cumulative_regret", "std"),
        mean_reward=("mean_reward", "mean"),
        mean_reward_sd=("mean_reward", "std"),
        seeds=("seed", "nunique"),
    )
    return summary.reindex([p for p in POLICIES if p in summary.index]).reset_index()


# --------------------------------------------------------------------------------------------------------------
# Live: merge, score and learn, one request per round, with a ledger that survives a kill


class Ledger:
    """SQLite record of the live loop: a round is written as ``started`` before its merge and ``done`` after.

    A process killed mid-merge leaves its round ``started``; the next run redoes that round with the same request
    and arm, so no round is repeated or lost.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path))
        with self.connection:
            self.connection.execute(
                "CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, "
                "task TEXT NOT NULL, arm TEXT NOT NULL, status TEXT NOT NULL, reward REAL, record TEXT)"
            )

    def rows(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM rounds ORDER BY round", self.connection)

    def start(self, index: int, a: str, b: str, task: str, arm: str) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT INTO rounds (round, a, b, task, arm, status) VALUES (?, ?, ?, ?, ?, 'started')",
                (index, a, b, task, arm),
            )

    def finish(self, index: int, reward: float | None, record: Mapping[str, Any]) -> None:
        with self.connection:
            self.connection.execute(
                "UPDATE rounds SET status = 'done', reward = ?, record = ? WHERE round = ?",
                (reward, json.dumps(record, sort_keys=True), index),
            )

    def close(self) -> None:
        self.connection.close()


def live_choice(
    contexts: pd.DataFrame,
    history: pd.DataFrame,
    operators: Sequence[str],
    request: tuple[str, str, str],
    *,
    policy: str,
    alpha: float,
    seed: int,
) -> str:
    """The bandit's arm for ``request``, from a policy rebuilt on ``history`` (warm-start labels, then the ledger).

    Rebuilding from the same rows in the same order gives the same policy, which is what makes a resumed run
    choose exactly what an uninterrupted one would have.

    Parameters
    ----------
    contexts : pandas.DataFrame
        Raw pair features indexed by (a, b, task) for every present pair.
    history : pandas.DataFrame
        ``a``, ``b``, ``task``, ``operator``, ``reward`` rows, oldest first.
    operators : sequence of str
        The arms present now (an operator without history is new to the policy and gets its full bonus).
    """
    standardised = standardise(contexts)
    keys = list(zip(history["a"], history["b"], history["task"], strict=True))
    usable = history[[key in standardised.index for key in keys] & history["operator"].isin(operators).to_numpy()]
    context = standardised.loc[[request]].to_numpy()
    learner = OnlinePolicy(policy, alpha=alpha, epsilon=0.0, seed=seed)
    if len(usable):
        rows = standardised.loc[list(zip(usable["a"], usable["b"], usable["task"], strict=True))].to_numpy()
        learner.learn(list(usable["operator"]), list(usable["reward"]), rows)
    else:
        # Nothing to learn from yet. MABWiser predicts only after a fit; one row with a zero context leaves every
        # arm's ridge model at its prior, so the choice is the prior's (all arms equal; ties as MABWiser breaks them).
        learner.learn([sorted(operators)[0]], [0.0], context * 0)
    learner.add_arms(sorted(operators))
    return learner.choose(context[0])


def run_live(
    config_path: str | os.PathLike,
    layout: RunLayout,
    rounds: int,
    *,
    task_dir: str | os.PathLike = "config/tasks",
    threads: int | None = None,
    echo=print,
) -> pd.DataFrame:
    """Play the live loop until the run's ledger (``bandit/ledger.sqlite``) holds ``rounds`` finished rounds.

    Each round re-reads the config, so an operator, task or expert added to it is part of the next round (an
    expert once ``snakemake all_features`` has built its checkpoint, scores and pair features); draws the next
    request (ordered pair and one of its home tasks) from a seed of the config and the round number; rebuilds the
    policy from the run's labels (warm start) and the ledger; records the round as started; merges with mergekit
    and scores with lm-eval on the task; records the reward. Returns the ledger.
    """

    ledger = Ledger(layout.bandit_ledger)
    try:
        while True:
            rows = ledger.rows()
            done = rows[rows["status"] == "done"]
            if len(done) >= rounds:
                return rows
            index = len(done)
            raw = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
            catalog = load(raw, workdir=Path.cwd(), where=str(config_path))
            spec = catalog.config.bandit
            base = layout.checkpoint_manifest(catalog.base.name)
            ready = [
                name
                for name in catalog.expert_names
                if layout.checkpoint_manifest(name).is_file() and layout.glob(layout.expert_scores(name, "*"))
            ]
            tables = [
                pd.read_parquet(path)
                for a in ready
                for b in ready
                if a != b and (path := layout.pair_features(a, b)).is_file()
            ]
            if not tables or not base.is_file():
                raise ConfigError(
                    f"{layout.root} has no built expert pairs; run `snakemake all_features` for this config first"
                )
            contexts = pd.concat(tables).set_index(["a", "b", "task"])[feature_names()]
            scores = {name: read_checkpoint_scores(layout, name)["tasks"] for name in ready}
            # A task on which both parents score 0 has no normalised score: no reward to learn from, no request.
            requests = [
                (a, b, task)
                for a, b, _ in dict.fromkeys(contexts.index)
                for task in catalog.merge_tasks(a, b)
                if (a, b, task) in contexts.index
                and task in scores[a]
                and task in scores[b]
                and max(scores[a][task]["score"], scores[b][task]["score"]) > 0
            ]
            if not requests:
                raise ConfigError(f"no built pair of {layout.root} has a home task on which a parent scores above 0")
            started = rows[rows["status"] == "started"]
            if len(started):
                row = started.iloc[0]
                if row["round"] != index:
                    raise RuntimeError(f"ledger {ledger.path}: round {row['round']} is started but {index} is next")
                request, arm = (row["a"], row["b"], row["task"]), row["arm"]
                if arm not in catalog.operators:
                    raise ConfigError(
                        f"round {index} was started with operator {arm!r}, which {config_path} no longer lists; "
                        "put it back to finish the round"
                    )
            else:
                request = sorted(requests)[random.Random(f"{catalog.bandit_seed}/{index}").randrange(len(requests))]
                history = _history(layout, done)
                arm = live_choice(
                    contexts,
                    history,
                    list(catalog.operators),
                    request,
                    policy=spec.policy,
                    alpha=spec.alpha,
                    seed=catalog.bandit_seed,
                )
                ledger.start(index, *request, arm)
            a, b, task = request
            operator = catalog.operators[arm]
            runtime = runtime_settings(catalog.config)
            record = merge_score(
                operator,
                checkpoint_dir(layout.checkpoint_manifest(a)),
                checkpoint_dir(layout.checkpoint_manifest(b)),
                checkpoint_dir(base),
                parent_scores=tuple(read_checkpoint_scores(layout, name) for name in (a, b)),
                task_dir=task_dir,
                data_files={task: layout.task_data(task, "eval")},
                seeds=catalog.merge_seeds if operator.randomised else [0],
                batch_size=runtime.batch_size,
                limit=catalog.config.scoring.limit,
                threads=threads,
                scratch_dir=runtime.scratch_dir,
                exact_match=catalog.config.scoring.exact_match,
                dtype=catalog.config.scoring.dtype,
            )
            # written before the round is marked done, so a finished round always has its items
            write_items(record.pop("items"), layout.bandit_round_items(index))
            reward = record["tasks"][task]["normalised"]
            reward = None if reward is None or math.isnan(reward) else float(reward)
            ledger.finish(index, reward, {**record, "a": a, "b": b})
            finished = ledger.rows()
            mean = finished["reward"].mean()
            echo(
                f"round {index + 1}/{rounds}: {arm} on ({a}, {b}) for {task} -> reward "
                + (f"{reward:.3f}" if reward is not None else "n/a (both parents score 0)")
                + f"; mean reward so far {mean:.3f}"
            )
    finally:
        ledger.close()


def _history(layout: RunLayout, done: pd.DataFrame) -> pd.DataFrame:
    """Warm-start rows (the run's labels, if built) followed by the ledger's finished rounds."""
    columns = ["a", "b", "task", "operator", "reward"]
    parts = []
    labels = layout.labels_parquet
    if labels.is_file():
        table = pd.read_parquet(labels)
        table = table[table[TARGET].notna()]
        parts.append(table.rename(columns={TARGET: "reward"})[columns])
    played = done[done["reward"].notna()].rename(columns={"arm": "operator"})
    parts.append(played[columns])
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "POLICIES",
    "Arrival",
    "Ledger",
    "OnlinePolicy",
    "World",
    "live_choice",
    "regret_summary",
    "replay",
    "run_live",
    "standardise",
    "stream",
]
