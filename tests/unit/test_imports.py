"""The package's import graph, read from the source: dependencies point from later DAG stages to earlier ones, no
module imports itself in a circle, and what the workflow imports at parse time stays free of the heavy libraries."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "simmerge"

# Each group may import its own modules and those of the groups before it. ``run`` (the validated config with the
# operator registry) needs only core and merges, and the bandit's live loop uses it, so it comes right after merges;
# ``recommend``, ``plan`` (cost before launch) and ``cli`` sit on top.
ORDER = [
    "core",
    "catalog",
    "features",
    "merges",
    "run",
    "evaluate",
    "multiway",
    "online",
    "report",
    "recommend",
    "plan",
    "cli",
]

# Libraries that take seconds to import: Snakemake imports rules/common.smk's modules whenever it parses the workflow.
HEAVY = {"torch", "transformers", "mergekit", "lm_eval", "sklearn", "skops", "safetensors", "huggingface_hub"}
HEAVY |= {"datasets", "matplotlib", "mabwiser"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(module: str) -> set[str]:
    """Modules named by the import statements at the top level of ``module`` (``from p import m`` gives ``p.m``
    when ``m`` is a module)."""
    names = set()
    for node in ast.parse(MODULES[module].read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                for alias in node.names
            )
    return names


def internal_imports(module: str) -> set[str]:
    return {name for name in top_level_imports(module) if name in MODULES and name != "simmerge"}


def group(module: str) -> str:
    return module.split(".")[1]


def test_every_module_belongs_to_a_group():
    assert {group(module) for module in MODULES if module != "simmerge"} == set(ORDER)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "simmerge"])
def test_imports_point_to_earlier_stages(module):
    later = {target for target in internal_imports(module) if ORDER.index(group(target)) > ORDER.index(group(module))}
    assert not later, f"{module} imports {sorted(later)}, from a later stage than its own"


def test_run_needs_only_core_catalog_and_merges():
    assert {group(target) for target in internal_imports("simmerge.run")} <= {"core", "catalog", "merges"}


def test_no_import_cycle():
    graph = {module: internal_imports(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if module not in done:
            for target in sorted(graph[module]):
                visit(target, [*path, module])
            done.add(module)

    for module in graph:
        visit(module, [])


def test_the_workflow_parse_imports_no_heavy_library():
    common = (REPO / "rules" / "common.smk").read_text(encoding="utf-8")
    seen, todo = set(), re.findall(r"^import (simmerge\S*)", common, flags=re.MULTILINE)
    assert todo, "rules/common.smk imports no simmerge module"
    libraries = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in top_level_imports(module):
            if name in MODULES:
                todo.append(name)
            else:
                libraries.add(name.split(".")[0])
    assert not libraries & HEAVY, f"parsing the workflow imports {sorted(libraries & HEAVY)} (through {sorted(seen)})"
