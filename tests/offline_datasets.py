"""Small, seeded datasets in the real layouts of lm-eval's ``arc_easy``/``arc_challenge`` and ``gsm8k``; a user task.

Everything here is written offline with the standard library and pyarrow; nothing is downloaded.

* :func:`write_ai2_arc` and :func:`write_gsm8k` lay out a folder as the Hugging Face dataset repositories
  ``allenai/ai2_arc`` and ``openai/gsm8k`` are laid out: a ``README.md`` whose YAML front matter has the ``configs:``
  block of the real card, and one parquet shard per config and split with the real columns.
  ``datasets.load_dataset(str(folder), "ARC-Easy")`` reads the card's ``configs``, so lm-eval's registry tasks load such
  a folder unchanged once their config's ``dataset_path`` is the folder. In lm-eval 0.4.13 that takes the *full*
  config: a bare ``{"task": "arc_easy", "dataset_path": str(folder)}`` given to ``TaskManager.load`` or
  ``simple_evaluate`` is built as a new inline task, without the registry YAML; merge the YAML first
  (``lm_eval.tasks._yaml_loader.load_yaml(manager.task_index["arc_easy"].yaml_path)`` plus the overrides, as
  ``registry_spec`` in tests/unit/test_offline_datasets.py does).
* :func:`write_hub_cache` hand-lays the Hugging Face *hub* cache of a dataset repository (``datasets--ns--name`` with
  ``blobs/``, ``refs/main`` and ``snapshots/<sha>/``), as ``huggingface_hub`` leaves it after a download.
* :func:`write_datasets_cache` lays the *datasets* Arrow cache of the same repository
  (``<HF_DATASETS_CACHE>/ns___name/<config>/0.0.0/<sha>/``), as ``datasets.load_dataset("ns/name", config)`` leaves it
  after an online load.
* :func:`write_user_task` writes a user's own lm-eval task folder (YAML, ``utils.py`` with a ``!function`` metric and
  its JSONL data).

Why the hub cache alone is not enough offline (datasets 5.2.0)
---------------------------------------------------------------
In ``datasets.load.dataset_module_factory`` the hub branch for a ``"ns/name"`` path starts with
``_raise_if_offline_mode_is_enabled()``, which raises as soon as ``datasets.config.HF_HUB_OFFLINE`` is true (that is
``HF_DATASETS_OFFLINE`` if set, else ``HF_HUB_OFFLINE``, both read at import). The hub cache is then never looked at:
the error is swallowed and ``CachedDatasetModuleFactory`` looks for an already *prepared* dataset under the datasets
cache (glob ``ns___name/*/*/*``) and reloads its Arrow files through the packaged ``cache`` builder, which picks the
directory ``<config>/<version>/<hash>`` whose ``dataset_info.json`` names that config. The datasets cache is the
``cache_dir`` argument (lm-eval passes the task's ``dataset_kwargs``, so ``dataset_kwargs: {cache_dir: ...}`` works)
or ``datasets.config.HF_DATASETS_CACHE`` (``HF_DATASETS_CACHE``/``HF_HOME``, read at import). So, offline,
``load_dataset("allenai/ai2_arc", "ARC-Easy")`` -- and lm-eval's ``arc_easy`` unchanged -- needs the datasets Arrow
cache, which :func:`write_datasets_cache` produces by preparing the local copy once and copying the result to the cache
key of the hub repository (an online load keys it by the repository's commit sha, used here as the hash directory).

The hub cache from :func:`write_hub_cache` is what ``huggingface_hub.hf_hub_download`` (and so transformers) resolves
offline. datasets reads it only when datasets itself is not offline (``HF_DATASETS_OFFLINE=0`` with
``HF_HUB_OFFLINE=1``): it then gets ``README.md`` from the hub cache but asks the Hub API for the revision
(``/api/datasets/ns/name/revision/<sha>``), which huggingface_hub refuses offline, and the load ends in
``ConnectionError`` -- a hand-laid hub cache cannot serve ``load_dataset`` without a network.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FAKE_REVISION = "0123456789abcdef0123456789abcdef01234567"
"""A commit sha for hand-laid caches: 40 hex digits, as ``huggingface_hub`` expects of a snapshot folder name."""

LABELS = ("A", "B", "C", "D")

ARC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("choices", pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])),
        ("answerKey", pa.string()),
    ]
)
GSM8K_SCHEMA = pa.schema([("question", pa.string()), ("answer", pa.string())])

# The front matter of the real cards, trimmed to the keys datasets reads (the real ones also carry ``dataset_info``
# with byte counts, licences and task tags); ``configs`` is verbatim in shape: one entry per config, one glob per split.
AI2_ARC_CARD = """\
---
language:
- en
license: cc-by-sa-4.0
pretty_name: Ai2Arc
configs:
- config_name: ARC-Challenge
  data_files:
  - split: train
    path: ARC-Challenge/train-*
  - split: test
    path: ARC-Challenge/test-*
  - split: validation
    path: ARC-Challenge/validation-*
- config_name: ARC-Easy
  data_files:
  - split: train
    path: ARC-Easy/train-*
  - split: test
    path: ARC-Easy/test-*
  - split: validation
    path: ARC-Easy/validation-*
---

# Dataset Card for "ai2_arc" (SimMerge-bench offline fixture)

Generated arithmetic questions in the layout of the AI2 Reasoning Challenge repository; not the real data.
"""

GSM8K_CARD = """\
---
language:
- en
license: mit
pretty_name: Grade School Math 8K
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
- config_name: socratic
  data_files:
  - split: train
    path: socratic/train-*
  - split: test
    path: socratic/test-*
---

# Dataset Card for GSM8K (SimMerge-bench offline fixture)

Generated two-step word problems in the layout of the openai/gsm8k repository; not the real data.
"""


def _shard(folder: Path, config: str, split: str) -> Path:
    return folder / config / f"{split}-00000-of-00001.parquet"


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def arc_rows(config: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` ARC-style rows: "What is a + b?" with four distinct numeric choices, the answer at a seeded label."""
    rng = random.Random(f"{seed}:{config}:{split}")
    hard = config == "ARC-Challenge"
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 99 if hard else 20), rng.randint(2, 99 if hard else 20)
        answer = a * b if hard else a + b
        wrong = set()
        while len(wrong) < 3:
            candidate = answer + rng.choice([-1, 1]) * rng.randint(1, 9)
            if candidate != answer and candidate > 0:
                wrong.add(candidate)
        options = sorted(wrong)
        position = rng.randrange(4)
        options.insert(position, answer)
        rows.append(
            {
                "id": f"SimArc{'Challenge' if hard else 'Easy'}_{split}_{i:04d}",
                "question": f"What is {a} {'times' if hard else 'plus'} {b}?",
                "choices": {"text": [str(option) for option in options], "label": list(LABELS)},
                "answerKey": LABELS[position],
            }
        )
    return rows


def write_ai2_arc(
    root: Path,
    n_train: int = 8,
    n_validation: int = 4,
    n_test: int = 10,
    seed: int = 0,
    n_challenge: tuple[int, int, int] = (4, 2, 5),
) -> Path:
    """Write ``root`` as the ``allenai/ai2_arc`` repository: README.md with ``configs`` and parquet shards.

    ARC-Easy gets ``n_train``/``n_validation``/``n_test`` rows (additions); ARC-Challenge gets ``n_challenge``
    (train, validation, test) rows (multiplications). Columns: ``id``, ``question``,
    ``choices`` (struct of ``text`` and ``label`` lists), ``answerKey``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(AI2_ARC_CARD, encoding="utf-8")
    sizes = {
        "ARC-Easy": dict(zip(("train", "validation", "test"), (n_train, n_validation, n_test), strict=True)),
        "ARC-Challenge": dict(zip(("train", "validation", "test"), n_challenge, strict=True)),
    }
    for config, splits in sizes.items():
        for split, n in splits.items():
            _write_parquet(_shard(root, config, split), arc_rows(config, split, n, seed), ARC_SCHEMA)
    return root


def gsm8k_rows(split: str, n: int, seed: int = 0, socratic: bool = False) -> list[dict]:
    """``n`` GSM8K-style rows: a two-step word problem whose answer is worked out and ends in ``#### N``."""
    rng = random.Random(f"{seed}:gsm8k:{split}")
    names = ["Tom", "Ana", "Lee", "Maya", "Omar", "Sara", "Ivan", "Nora"]
    things = ["apples", "marbles", "stickers", "pencils", "books", "shells"]
    rows = []
    for _ in range(n):
        name, thing = rng.choice(names), rng.choice(things)
        have, buy, give = rng.randint(2, 30), rng.randint(2, 30), rng.randint(1, 9)
        total = have + buy
        left = total - give
        question = (
            f"{name} has {have} {thing} and buys {buy} more. Then {name} gives {give} {thing} to a friend. "
            f"How many {thing} does {name} have now?"
        )
        if socratic:
            steps = (
                f"How many {thing} does {name} have after buying? ** {name} has {have}+{buy}=<<{have}+{buy}={total}>>"
                f"{total} {thing}.\nHow many are left after giving some away? ** {name} has {total}-{give}="
                f"<<{total}-{give}={left}>>{left} {thing} left."
            )
        else:
            steps = (
                f"{name} has {have}+{buy}=<<{have}+{buy}={total}>>{total} {thing}.\n"
                f"After giving {give} away, {name} has {total}-{give}=<<{total}-{give}={left}>>{left} {thing}."
            )
        rows.append({"question": question, "answer": f"{steps}\n#### {left}"})
    return rows


def write_gsm8k(root: Path, n_train: int = 8, n_test: int = 10, seed: int = 0) -> Path:
    """Write ``root`` as the ``openai/gsm8k`` repository: configs ``main`` and ``socratic``, splits train and test."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(GSM8K_CARD, encoding="utf-8")
    for config in ("main", "socratic"):
        for split, n in (("train", n_train), ("test", n_test)):
            rows = gsm8k_rows(split, n, seed, socratic=config == "socratic")
            _write_parquet(_shard(root, config, split), rows, GSM8K_SCHEMA)
    return root


def gsm8k_final_answer(answer: str) -> str:
    """The number after ``#### `` in a GSM8K answer."""
    return answer.rsplit("#### ", 1)[-1].strip()


def _repo_folder(repo_id: str, repo_type: str = "dataset") -> str:
    return f"{repo_type}s--" + repo_id.replace("/", "--")


def write_hub_cache(
    cache_dir: Path, repo_id: str, source_folder: Path, revision: str = FAKE_REVISION, repo_type: str = "dataset"
) -> Path:
    """Hand-lay the huggingface_hub cache of ``repo_id`` holding the files of ``source_folder``; return the snapshot.

    Layout (as ``hf_hub_download`` leaves it): ``<cache_dir>/datasets--ns--name/blobs/<sha256 of file>``,
    ``refs/main`` holding ``revision``, and ``snapshots/<revision>/<path>`` as relative symlinks to the blobs (copies
    where the file system has no symlinks). With ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=cache_dir``,
    ``hf_hub_download(repo_id, path, repo_type="dataset")`` and ``snapshot_download`` resolve here. See the module
    docstring for why ``datasets.load_dataset`` needs :func:`write_datasets_cache` as well.
    """
    if len(revision) != 40 or any(c not in "0123456789abcdef" for c in revision):
        raise ValueError(f"revision must be 40 lowercase hex digits, not {revision!r}")
    repo_root = Path(cache_dir) / _repo_folder(repo_id, repo_type)
    snapshot = repo_root / "snapshots" / revision
    (repo_root / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_root / "refs").mkdir(parents=True, exist_ok=True)
    source_folder = Path(source_folder)
    for source in sorted(p for p in source_folder.rglob("*") if p.is_file()):
        relative = source.relative_to(source_folder)
        data = source.read_bytes()
        blob = repo_root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        target = snapshot / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        try:
            target.symlink_to(Path(*[".."] * (len(relative.parts) + 1), "blobs", blob.name))
        except OSError:
            shutil.copyfile(blob, target)
    (repo_root / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def write_datasets_cache(
    datasets_cache: Path,
    repo_id: str,
    source_folder: Path,
    configs: list[str] | None = None,
    revision: str = FAKE_REVISION,
) -> list[Path]:
    """Lay the datasets Arrow cache that an online ``load_dataset(repo_id, config)`` leaves, from a local copy.

    Each config of ``source_folder`` (a folder from :func:`write_ai2_arc` / :func:`write_gsm8k`; all configs of its
    card unless ``configs`` is given) is prepared once by ``datasets`` from the folder, into a scratch cache, and its
    prepared directory copied to ``<datasets_cache>/ns___name/<config>/0.0.0/<revision>/`` with its Arrow files renamed
    to ``name-<split>.arrow``: the key ``CachedDatasetModuleFactory`` and the ``cache`` builder look up offline
    (``HF_HUB_OFFLINE=1``, ``HF_DATASETS_CACHE=datasets_cache``). Returns the prepared directories.
    """
    import datasets  # deferred: slow to import, and only this writer needs it
    from datasets.naming import camelcase_to_snakecase

    namespace, _, name = repo_id.rpartition("/")
    cached_name = camelcase_to_snakecase(name)
    root = Path(datasets_cache) / (f"{namespace}___{cached_name}" if namespace else cached_name)
    if configs is None:
        configs = datasets.get_dataset_config_names(str(source_folder))
    written = []
    with tempfile.TemporaryDirectory(prefix="simmerge-dscache-") as scratch:
        for config in configs:
            builder = datasets.load_dataset_builder(str(source_folder), config, cache_dir=scratch)
            builder.download_and_prepare()
            prepared = Path(builder.cache_dir)
            target = root / builder.config_id / str(builder.config.version) / revision
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for item in prepared.iterdir():
                if item.name.endswith(".lock"):
                    continue
                new_name = item.name
                if item.suffix == ".arrow" and item.name.startswith(builder.dataset_name + "-"):
                    new_name = cached_name + item.name[len(builder.dataset_name) :]
                shutil.copyfile(item, target / new_name)
            info = json.loads((target / "dataset_info.json").read_text(encoding="utf-8"))
            info["dataset_name"] = cached_name
            for split in (info.get("splits") or {}).values():
                split["dataset_name"] = cached_name
            (target / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
            written.append(target)
    return written


WORD_LENGTHS_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {train}
    test: {test}
output_type: generate_until
training_split: train
test_split: test
doc_to_text: "How many letters are in the word \\"{{{{word}}}}\\"?\\nAnswer:"
doc_to_target: "{{{{length}}}}"
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
generation_kwargs:
  until: ["\\n", "How many"]
  do_sample: false
  max_gen_toks: 6
metric_list:
  - metric: !function utils.length_match
    aggregation: mean
    higher_is_better: true
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
metadata:
  version: 1.0
"""

WORD_LENGTHS_UTILS = '''\
"""Custom metric of the word_lengths task: lm-eval calls it per document as fn(references=[gold], predictions=[out])."""

import re


def length_match(references, predictions, **kwargs):
    """1.0 when the first integer of the model's answer is the word's length, else 0.0."""
    found = re.search(r"-?\\d+", predictions[0])
    return float(found is not None and int(found.group()) == int(references[0]))
'''

WORDS = (
    "cat dog bird tree river stone cloud apple bread chair table window garden planet rocket music "
    "yellow orange purple silver winter summer forest island bridge castle dragon pencil"
).split()


def word_length_rows(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` rows ``{"word": w, "length": str(len(w))}``, words drawn without replacement per split when possible."""
    rng = random.Random(f"{seed}:word_lengths:{split}")
    pool = list(WORDS)
    rng.shuffle(pool)
    words = [pool[i % len(pool)] for i in range(n)]
    return [{"word": word, "length": str(len(word))} for word in words]


def write_user_task(
    folder: Path,
    n_test: int = 6,
    n_train: int = 4,
    seed: int = 0,
    task: str = "word_lengths",
    relative_to: Path | None = None,
) -> Path:
    """Write a self-contained lm-eval task folder: ``<task>.yaml``, ``utils.py``, ``train.jsonl``, ``test.jsonl``.

    The YAML loads the JSONL files with ``dataset_path: json`` and *absolute* ``dataset_kwargs.data_files`` (lm-eval
    hands relative ones to datasets, which resolves them against the working directory), is ``generate_until`` with
    ``training_split``/``test_split``, and scores with a ``!function utils.length_match`` metric (reported under the
    function's name, ``length_match``) besides lm-eval's ``exact_match``. With ``relative_to`` the paths are written
    relative to that folder instead (a committed copy; a SimMerge config's ``dataset_kwargs`` then resolves them).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("test", n_test)):
        paths[split] = folder / f"{split}.jsonl"
        rows = word_length_rows(split, n, seed)
        paths[split].write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    shown = {
        split: str(path.resolve().relative_to(Path(relative_to).resolve()) if relative_to else path.resolve())
        for split, path in paths.items()
    }
    yaml_text = WORD_LENGTHS_YAML.format(task=task, train=json.dumps(shown["train"]), test=json.dumps(shown["test"]))
    (folder / f"{task}.yaml").write_text(yaml_text, encoding="utf-8")
    (folder / "utils.py").write_text(WORD_LENGTHS_UTILS, encoding="utf-8")
    return folder


def write_smoke_data(root: Path, repo_root: Path) -> None:
    """The offline data of ``config/smoke.yaml``'s lm-eval tasks, committed under ``config/smoke_data``:
    ``ai2_arc/`` (a copy of ``allenai/ai2_arc``'s layout for the registry task ``arc_easy``) and ``word_lengths/`` (a
    user task folder, its data paths relative to the repository root). ``python tests/offline_datasets.py`` rewrites
    them; a test checks that the committed files are what this writes."""
    write_ai2_arc(Path(root) / "ai2_arc", n_train=120, n_validation=12, n_test=40, seed=0, n_challenge=(4, 2, 4))
    write_user_task(Path(root) / "word_lengths", n_test=40, n_train=120, seed=0, relative_to=repo_root)


if __name__ == "__main__":
    REPO = Path(__file__).resolve().parent.parent
    write_smoke_data(REPO / "config" / "smoke_data", REPO)
