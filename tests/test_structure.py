"""The code's shape, checked from its source: DVC deps that match the imports, imports that point down.

Nothing here runs DVC or imports the project: it parses ``dvc.yaml`` and walks each module's
``import`` statements with :mod:`ast` (function-level imports included), so it takes well under
a second and fails on the edit that breaks the rule, not on a stale result months later.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "visionlab"

# Rank of each part of the library: a module may import its own package and anything ranked lower.
# Top-level modules (params, paths, errors, ...) are the base; the doctor's checks look at every part,
# and the command line sits on everything.
LAYERS = {
    "": 0,
    "data": 1,
    "models": 1,
    "tracking": 1,
    "runtime": 2,
    "training": 3,
    "evaluation": 3,
    "explanations": 3,
    "reporting": 4,
    "doctor": 5,
    "cli": 6,
}


def module_file(name: str) -> Path | None:
    """The file ``import name`` runs, if ``name`` is a project module."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _runtime_nodes(tree: ast.AST):
    """Every node, except under ``if TYPE_CHECKING:``: those imports never run."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


@cache
def direct_imports(path: Path) -> frozenset[str]:
    """Project modules ``path`` imports anywhere in its body (lazy imports in functions too)."""
    found: set[str] = set()
    if path.parent == ROOT / "stages" or not path.is_relative_to(SRC):
        package = ""
    else:
        name = module_name(path)
        package = name if _is_package(path) else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            # ``from visionlab.x import y`` loads the module x.y when y is one, else just x.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # A module named in a string runs too: ``python -m visionlab.training.ddp_worker``
            # (launch.WORKER_MODULE), ``importlib.import_module("visionlab.x")``, "module:function".
            names = [node.value.partition(":")[0]] if MODULE_NAME.fullmatch(node.value) else []
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == PACKAGE and module_file(name))
    return frozenset(found)


MODULE_NAME = re.compile(rf"{PACKAGE}(\.\w+)+(:\w+)?")


def loaded_files(name: str) -> set[Path]:
    """Every file Python runs for ``import name``: the module and each package above it."""
    parts = name.split(".")
    return {module_file(".".join(parts[:n])) for n in range(1, len(parts) + 1)} - {None}


def import_closure(script: Path) -> set[Path]:
    """``script`` and every project file it loads, transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in direct_imports(path):
            todo.extend(loaded_files(name) - seen)
    return seen


def library_modules() -> list[Path]:
    return sorted((SRC / PACKAGE).rglob("*.py"))


def dvc_stages() -> dict[str, dict]:
    """Each stage's ``cmd`` and ``deps`` (a ``foreach`` stage's ``do`` block, with its template)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def stage_script(stage: dict) -> Path:
    found = re.search(r"\bpython\s+(stages/\S+\.py)\b", stage["cmd"])
    assert found, f"cannot find the stage script in {stage['cmd']!r}"
    return ROOT / found.group(1)


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    """Files that no dep (a file, or a folder above it) names."""
    missing = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if not any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps):
            missing.append(rel)
    return sorted(missing)


# Top-level modules that look at the whole installation: the command line and its doctor checks.
APPLICATION = {"cli.py", "cli_data.py", "cli_plan.py", "cli_predict.py", "cli_servers.py"}


# Packages that belong to the base like the top-level modules: the params.yaml schema, split by section.
BASE_PACKAGES = {"params"}


def layer(path: Path) -> str:
    parts = path.relative_to(SRC / PACKAGE).parts
    if len(parts) == 1:
        return "cli" if parts[0] in APPLICATION else ""
    return "" if parts[0] in BASE_PACKAGES else parts[0]


# ---------------------------------------------------------------------------------------------
# DVC: each stage depends on every project file its script loads


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_every_project_file_a_stage_loads_is_one_of_its_deps(name):
    stage = dvc_stages()[name]
    deps = [dep for dep in stage.get("deps", []) if isinstance(dep, str)]
    missing = uncovered(import_closure(stage_script(stage)), deps)
    assert not missing, (
        f"dvc.yaml stage {name!r} runs code it does not depend on, so `dvc repro` would keep a stale "
        f"result after an edit to: {', '.join(missing)}"
    )


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_every_code_dep_of_a_stage_exists(name):
    code = [dep for dep in dvc_stages()[name].get("deps", []) if dep.startswith(("src/", "stages/"))]
    gone = [dep for dep in code if not (ROOT / dep).exists()]
    assert not gone, f"dvc.yaml stage {name!r} depends on code that no longer exists: {gone}"


def test_the_closure_follows_lazy_and_package_imports():
    # The walk itself: a function-level import (registry -> study_cnns) and the packages on the way.
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure(ROOT / "stages/train.py")}
    assert "src/visionlab/models/study_cnns.py" in closure
    assert "src/visionlab/models/__init__.py" in closure
    assert "src/visionlab/__init__.py" in closure
    assert "src/visionlab/params/__init__.py" in closure
    assert "src/visionlab/params/messages.py" in closure


def test_the_closure_follows_modules_named_in_strings():
    # launch.py starts its workers as `python -m visionlab.training.ddp_worker`: never imported.
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure(ROOT / "stages/train.py")}
    assert "src/visionlab/training/ddp_worker.py" in closure
    stage = dvc_stages()["train"]
    deps = [dep for dep in stage["deps"] if dep != "src/visionlab/training/ddp_worker.py"]
    assert uncovered(import_closure(stage_script(stage)), deps) == ["src/visionlab/training/ddp_worker.py"]


def test_the_deps_check_catches_a_dependency_left_out():
    stage = dvc_stages()["train"]
    deps = [dep for dep in stage["deps"] if dep != "src/visionlab/models"]
    missing = uncovered(import_closure(stage_script(stage)), deps)
    assert "src/visionlab/models/factory.py" in missing


# ---------------------------------------------------------------------------------------------
# Imports point down


def test_every_import_points_down():
    wrong = []
    for path in library_modules():
        own = layer(path)
        for name in direct_imports(path):
            target = module_file(name)
            other = layer(target)
            if other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module_name(path)} ({own or 'base'}) imports {name} ({other or 'base'})")
    assert not wrong, "imports that do not point to a lower layer:\n" + "\n".join(sorted(wrong))


def test_every_library_part_has_a_layer():
    assert {layer(path) for path in library_modules()} <= set(LAYERS)


def stage_modules() -> set[str]:
    """The library modules a stage runs: what ``stages/*.py`` import, and every ``*_stage`` module."""
    entries = {
        name
        for script in (ROOT / "stages").glob("*.py")
        for name in direct_imports(script)
        if module_file(name) and not _is_package(module_file(name)) and name != f"{PACKAGE}.stage"
    }
    return entries | {module_name(p) for p in library_modules() if p.stem.endswith("_stage")}


def test_the_stage_modules_are_found():
    found = stage_modules()
    expected = {
        "visionlab.data.prepare_stage",
        "visionlab.training.train_stage",
        "visionlab.training.featurize_stage",
    }
    assert expected <= found
    assert "visionlab.stage" not in found


def test_no_library_module_imports_a_stage_module():
    entries = stage_modules()
    wrong = [
        f"{module_name(path)} imports {name}"
        for path in library_modules()
        for name in direct_imports(path)
        if name in entries and name != module_name(path)
    ]
    assert not wrong, (
        "a stage's module is its stage's alone; move what others need to a lower module:\n"
        + "\n".join(sorted(wrong))
    )
