"""Security: no unpickling, safe YAML, names that cannot leave results/, downloads of the allowed files only.

The first part scans the code with ``ast`` for the calls that would unpickle, run YAML tags or run a checkpoint's
code, and proves on snippets that the scan finds them. The rest checks the behaviour itself on crafted files.
"""

from __future__ import annotations

import ast
import copy
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simmerge.core.config import PREDICTOR_FAMILIES

REPO = Path(__file__).resolve().parents[2]
SCANNED = ["src", "workflow_scripts", "config/tasks"]

# Modules whose whole purpose is (un)pickling or code objects.
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
NUMPY_LOADS = {"numpy.load", "numpy.lib.format.read_array"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
ALWAYS_UNSAFE_CALLS = {
    "yaml.unsafe_load",
    "yaml.unsafe_load_all",
    "yaml.full_load",
    "yaml.full_load_all",
    "pandas.read_pickle",
}
# Keyword values that switch a safe default off, wherever they appear.
UNSAFE_KEYWORDS = {
    ("weights_only", False),
    ("allow_pickle", True),
    ("trust_remote_code", True),  # the setting must come from a catalog entry, never be hard-coded on
    ("trusted", True),  # skops: trust every type in the file
    ("safe_serialization", False),
    ("lazy_unpickle", True),
}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _literal(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


class _Scan(ast.NodeVisitor):
    """Collect unsafe imports and calls of one module, resolving import aliases (``np`` → ``numpy``)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.aliases: dict[str, str] = {}
        self.safe_loaders = set(SAFE_YAML_LOADERS)
        self.problems: list[str] = []

    def report(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.where}:{node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in PICKLE_MODULES:
                self.report(node, f"import {alias.name}")
            # `import numpy as np` binds np to numpy; `import os.path` binds os to os
            self.aliases[alias.asname or top] = alias.name if alias.asname else top
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module.split(".")[0] in PICKLE_MODULES:
            self.report(node, f"from {module} import ...")
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # A loader class of this module that derives from a safe loader is safe too (scoring's _TaskLoader).
        bases = {(self.resolve(_dotted(base)) or "").rsplit(".", 1)[-1] for base in node.bases}
        if bases & self.safe_loaders:
            self.safe_loaders.add(node.name)
        self.generic_visit(node)

    def resolve(self, name: str | None) -> str | None:
        if name is None:
            return None
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Call(self, node: ast.Call) -> None:
        name = self.resolve(_dotted(node.func)) or ""
        keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        for key, value in keywords.items():
            if (key, _literal(value)) in UNSAFE_KEYWORDS:
                self.report(node, f"{name or 'call'}({key}={_literal(value)!r})")
        if name in ALWAYS_UNSAFE_CALLS or name.endswith(".read_pickle"):
            self.report(node, name)
        elif name == "torch.load" and _literal(keywords.get("weights_only")) is not True:
            self.report(node, "torch.load without weights_only=True")
        elif (
            name in ("numpy.load", "numpy.lib.format.read_array")
            and _literal(keywords.get("allow_pickle")) is not False
        ):
            self.report(node, f"{name} without allow_pickle=False")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = keywords.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = (self.resolve(_dotted(loader)) or "").rsplit(".", 1)[-1] if loader is not None else ""
            if loader_name not in self.safe_loaders:
                self.report(node, f"{name} with Loader={loader_name or 'default'}")
        self.generic_visit(node)


def unsafe_uses(source: str, where: str = "<snippet>") -> list[str]:
    """Every unsafe import or call in a module's source, as ``where:line: what``."""
    scan = _Scan(where)
    tree = ast.parse(source)
    # Classes first, so that a loader defined below its use is known.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            scan.visit(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            scan.visit_ClassDef(node)
    scan.problems.clear()
    scan.visit(tree)
    return scan.problems


UNSAFE_SNIPPETS = {
    "import pickle": "import pickle",
    "from joblib import load": "from joblib import load",
    "torch.load": "import torch\ntorch.load('m.pt')",
    "torch.load weights_only=False": "import torch\ntorch.load('m.pt', weights_only=False)",
    "np.load default": "import numpy as np\nnp.load('x.npz')",
    "np.load allow_pickle=True": "import numpy as np\nnp.load('x.npz', allow_pickle=True)",
    "from numpy import load": "from numpy import load\nload('x.npy')",
    "yaml.load default": "import yaml\nyaml.load(text)",
    "yaml.load Loader": "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "yaml.load positional FullLoader": "import yaml\nyaml.load(text, yaml.FullLoader)",
    "yaml.unsafe_load": "import yaml\nyaml.unsafe_load(text)",
    "yaml.full_load": "import yaml as y\ny.full_load(text)",
    "read_pickle": "import pandas as pd\npd.read_pickle('t.pkl')",
    "trust_remote_code=True": "AutoModel.from_pretrained('x', trust_remote_code=True)",
    "skops trusted=True": "import skops.io as sio\nsio.load('m.skops', trusted=True)",
    "safe_serialization=False": "model.save_pretrained('out', safe_serialization=False)",
    "lazy_unpickle=True": "MergeOptions(lazy_unpickle=True)",
}

SAFE_SNIPPETS = {
    "np.load allow_pickle=False": "import numpy as np\nnp.load('x.npz', allow_pickle=False)",
    "yaml.safe_load": "import yaml\nyaml.safe_load(text)",
    "yaml.load SafeLoader": "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
    "SafeLoader subclass": "import yaml\nclass L(yaml.SafeLoader):\n    pass\nyaml.load(text, Loader=L)",
    "torch.load weights_only=True": "import torch\ntorch.load('m.pt', weights_only=True)",
    "trust_remote_code from config": "AutoModel.from_pretrained('x', trust_remote_code=entry.trust)",
    "a function named load": "def load(path):\n    return path\nload('x')",
}


@pytest.mark.parametrize("name", UNSAFE_SNIPPETS)
def test_scan_finds_each_unsafe_use(name):
    assert unsafe_uses(UNSAFE_SNIPPETS[name]), f"the scan missed: {UNSAFE_SNIPPETS[name]!r}"


@pytest.mark.parametrize("name", SAFE_SNIPPETS)
def test_scan_passes_safe_uses(name):
    assert unsafe_uses(SAFE_SNIPPETS[name]) == []


def test_code_uses_no_pickle_unsafe_yaml_or_hard_coded_remote_code():
    files = sorted(path for folder in SCANNED for path in (REPO / folder).rglob("*.py"))
    assert len(files) > 40  # the scan really reads the package and the workflow scripts
    problems = [p for path in files for p in unsafe_uses(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert problems == []


def test_rules_mention_no_pickle():
    # .smk files are not plain Python; their Python parts may not unpickle or load YAML unsafely either
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        for needle in ("pickle", "yaml.load(", "torch.load", "allow_pickle=True", "trust_remote_code=True"):
            assert needle not in text, f"{path.name} mentions {needle}"


# --------------------------------------------------------------------------------------------------------------
# The predictor: a skops zip, loaded trusting only the types a predictor is made of


@pytest.fixture(scope="module")
def predictor_rows():
    from simmerge.evaluate.predictor import training_rows

    rng = np.random.default_rng(0)
    rows = []
    for a in ("e1", "e2", "e3", "e4"):
        for b in ("e1", "e2", "e3", "e4"):
            if a == b:
                continue
            for operator in ("linear", "ties"):
                x = rng.normal(size=2)
                rows.append({"a": a, "b": b, "task": "t", "operator": operator, "f1": x[0], "f2": x[1]})
    labels = pd.DataFrame(rows).assign(normalised=lambda t: 0.5 + 0.1 * t["f1"])
    return training_rows(labels)


@pytest.mark.parametrize("family", PREDICTOR_FAMILIES)
def test_every_family_saves_as_skops_and_loads_with_the_trusted_types(family, predictor_rows, tmp_path):
    from simmerge.evaluate.predictor import fit_predictor, load_predictor, save_predictor

    predictor = fit_predictor(predictor_rows, ["f1", "f2"], ["linear", "ties"], family=family, seed=0)
    path = tmp_path / "model.skops"
    save_predictor(predictor, path)
    assert zipfile.is_zipfile(path) and "schema.json" in zipfile.ZipFile(path).namelist()
    loaded = load_predictor(path, feature_columns=["f1", "f2"], operators=["linear", "ties"])
    X = predictor_rows[["f1", "f2", "operator"]]  # noqa: N806 - scikit-learn's names
    assert np.array_equal(loaded.predict(X, return_std=True), predictor.predict(X, return_std=True))


class Smuggled:
    """A type no predictor holds."""


@pytest.mark.parametrize("payload", [eval, Smuggled()], ids=["builtins.eval", "foreign-class"])
def test_predictor_file_with_other_types_is_refused_before_loading(payload, tmp_path):
    import skops.io as sio

    from simmerge.evaluate.predictor import load_predictor

    path = tmp_path / "model.skops"
    sio.dump({"family": "ridge", "model": payload, "fold_models": [], "meta": "{}"}, path)
    with pytest.raises(ValueError, match="refusing to load types that a SimMerge predictor does not contain"):
        load_predictor(path)


# --------------------------------------------------------------------------------------------------------------
# Model summaries: npz read with allow_pickle=False


def test_model_summary_with_a_pickled_array_is_refused(tmp_path):
    from simmerge.features.summary import SummaryFormatError, load_summary

    path = tmp_path / "m.npz"
    # an object array is stored as a pickle inside the npz; unpickling it could run any code
    np.savez(path, meta=np.array([{"format_version": 1}], dtype=object))
    with pytest.raises(SummaryFormatError, match=r"m\.npz: holds a pickled object array.*allow_pickle=False"):
        load_summary(path)


# --------------------------------------------------------------------------------------------------------------
# YAML: python tags are never constructed


def test_task_yaml_with_a_python_tag_runs_nothing(tmp_path):
    from simmerge.merges.tasks import TaskYamlError, load_task_yaml

    marker = tmp_path / "pwned"
    path = tmp_path / "simmerge_x.yaml"
    path.write_text(f"task: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(TaskYamlError, match="could not determine a constructor"):
        load_task_yaml(path)
    assert not marker.exists()


def test_config_with_a_python_tag_runs_nothing(tmp_path, capsys):
    from simmerge.cli import main

    marker = tmp_path / "pwned"
    config = tmp_path / "config.yaml"
    config.write_text(f"run_name: !!python/object/apply:os.system ['touch {marker}']\n")
    # the config is read with yaml.safe_load: the tag is refused as invalid YAML, one line naming file and place
    assert main(["check", str(config)]) == 2
    assert "could not determine a constructor for the tag" in capsys.readouterr().err
    assert not marker.exists()


# --------------------------------------------------------------------------------------------------------------
# Names: a name that could leave results/ is refused by the config, before any path is built

TRAVERSAL = ["../x", "a/b", "/abs", "..", ".hidden"]


def _smoke() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text(encoding="utf-8"))


def _set_run_name(raw, name):
    raw["run_name"] = name


def _set_checkpoint(raw, name):
    raw["catalog"]["experts"][0]["name"] = name


def _set_task(raw, name):
    raw["tasks"][name] = {}


def _set_home_task(raw, name):
    raw["catalog"]["experts"][0]["tasks"] = [name]


def _set_operator(raw, name):
    raw["merges"]["operators"] = [{"name": name, "method": "linear", "model_parameters": {"weight": 0.5}}]


def _set_multiway_set(raw, name):
    raw["multiway"]["sets"][0]["name"] = name


def _set_multiway_member(raw, name):
    raw["multiway"]["sets"][0]["checkpoints"][0] = name


def _set_finetune_parent(raw, name):
    raw["catalog"]["experts"][0]["source"]["parent"] = name


NAME_FIELDS = {
    "run_name": _set_run_name,
    "checkpoint": _set_checkpoint,
    "task": _set_task,
    "home_task": _set_home_task,
    "operator": _set_operator,
    "multiway_set": _set_multiway_set,
    "multiway_member": _set_multiway_member,
    "finetune_parent": _set_finetune_parent,
}


@pytest.mark.parametrize("bad", TRAVERSAL)
@pytest.mark.parametrize("field", NAME_FIELDS)
def test_names_that_could_escape_results_are_refused_by_the_config(field, bad, tmp_path, monkeypatch):
    from simmerge.core.config import SLUG_FIX, ConfigError
    from simmerge.run import load

    raw = copy.deepcopy(_smoke())
    NAME_FIELDS[field](raw, bad)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(raw, workdir=tmp_path)
    message = str(info.value)
    assert repr(bad) in message
    assert SLUG_FIX in message
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


# --------------------------------------------------------------------------------------------------------------
# Hugging Face downloads: only the allowed file patterns


def test_download_takes_only_weights_config_and_tokenizer(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from test_hub import COMMIT, add_to_cache

    from simmerge.catalog.hub import fetch_checkpoint
    from simmerge.catalog.toy import build_tiny_checkpoint

    build_tiny_checkpoint(tmp_path / "model", seed=0, hidden_size=32, num_heads=4)
    files = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}
    unwanted = {
        "pytorch_model.bin": b"\x80\x04pickle",
        "optimizer.pt": b"\x80\x04pickle",
        "training_args.pkl": b"\x80\x04pickle",
        "modeling_evil.py": b"import os\n",
        # names that the tokenizer patterns (tokenizer*, vocab.*) would match on their own
        "tokenizer_evil.py": b"import os\n",
        "vocab.pkl": b"\x80\x04pickle",
        "setup.sh": b"#!/bin/sh\n",
        "sub/model.safetensors.bak": b"x",
    }
    cache = tmp_path / "hf_cache"
    add_to_cache(cache, "simmerge-test/mixed", COMMIT, {**files, **unwanted})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    provenance = fetch_checkpoint("simmerge-test/mixed", COMMIT, tmp_path / "ckpt", cache_dir=cache)
    copied = {p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*") if p.is_file()}
    assert copied == set(files) == set(provenance["files"])
    assert not copied & set(unwanted)
