"""The house rules of docs/architecture.md, checked on the source: stages import only downward, no import
circle (lazy imports inside functions count), modules, functions and parameter lists stay small, every
registered problem type and engine implements its interface, and every 0.2 module path still imports."""

from __future__ import annotations

import ast
import importlib
import inspect
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "lora_sentiment"

# Each stage may import the stages on lower floors and its own floor, never a higher one (docs/architecture.md).
FLOORS = [
    {"errors", "atomic", "measure", "_moved", "_face"},
    {"hub", "config", "options", "problems"},
    {"data", "runs"},
    {"modeling"},
    {"inference"},
    {"export", "training"},
    {"opening", "auditing"},
    {"batch", "serving"},
    {"bench"},
    {"cli"},
    {"__init__", "__main__"},
]
FLOOR = {stage: level for level, stages in enumerate(FLOORS) for stage in stages}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _stage(module: str) -> str:
    return module.split(".")[0]


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The package modules an import names (a `from package import module` names the module)."""
    if node.level:
        package = module.split(".")[: -1 if not module.endswith("__init__") else -1]
        if module.endswith("__init__"):
            package = module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        target = ".".join(base + ([node.module] if node.module else []))
    elif node.module and node.module.startswith("lora_sentiment"):
        target = node.module.removeprefix("lora_sentiment").lstrip(".")
    else:
        return []
    names = []
    for alias in node.names:
        child = f"{target}.{alias.name}" if target else alias.name
        names.append(child if child in MODULES or f"{child}.__init__" in MODULES else target)
    return [n if n in MODULES else f"{n}.__init__" if f"{n}.__init__" in MODULES else n for n in names if n]


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    skipped = {id(n) for node in guarded for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in skipped:
            found.update(_resolve(module, node))
        elif isinstance(node, ast.Import) and id(node) not in skipped:
            found.update(
                a.name.removeprefix("lora_sentiment.") for a in node.names if a.name.startswith("lora_sentiment.")
            )
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: _imports(module) for module in MODULES}


def test_stages_import_only_downward():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if FLOOR[_stage(target)] > FLOOR[_stage(module)]
    ]
    assert not upward, upward


def test_no_import_circle():
    state: dict[str, int] = {}
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def _functions():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield module, node


def test_modules_functions_and_parameter_lists_stay_small():
    long_modules = [m for m, p in MODULES.items() if len(p.read_text(encoding="utf-8").splitlines()) > 400]
    long_functions = [f"{m}.{n.name}" for m, n in _functions() if n.end_lineno - n.lineno + 1 > 60]
    wide = []
    for module, node in _functions():
        args = node.args
        named = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]
        if len(named) > 6:
            wide.append(f"{module}.{node.name} ({len(named)})")
    assert (long_modules, long_functions, wide) == ([], [], [])


def test_every_problem_type_implements_the_interface():
    from lora_sentiment.problems.base import REGISTRY, ProblemType, problem_type

    required = [name for name, member in vars(ProblemType).items() if callable(member) and not name.startswith("_")
                and "raise NotImplementedError" in inspect.getsource(member)]  # fmt: skip
    for name in REGISTRY:
        problem = problem_type(name)
        assert problem.name == name and problem.headline[0] in problem.metrics
        missing = [m for m in required if getattr(type(problem), m) is getattr(ProblemType, m)]
        if problem.weighted is False:
            missing = [m for m in missing if m not in ("balanced_weights", "weighted_loss")]
        assert not missing, (name, missing)


def test_every_engine_opens_what_it_writes():
    from lora_sentiment.export.engines import ENGINES, engine
    from lora_sentiment.export.engines.base import Engine

    for name in ENGINES:
        chosen = engine(name)
        assert chosen.name == name and type(chosen).write is not Engine.write and type(chosen).card is not Engine.card
        if chosen.model_file is not None:  # opened by predict / serve without torch
            assert type(chosen).session is not Engine.session and chosen.extra


@pytest.mark.parametrize("old", sorted(importlib.import_module("lora_sentiment._moved").MOVED))
def test_the_0_2_module_paths_still_import(old):
    from lora_sentiment._moved import MOVED

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        module = importlib.import_module(f"lora_sentiment.{old}")
    assert module is importlib.import_module(f"lora_sentiment.{MOVED[old]}")


@pytest.mark.parametrize(
    "package", ["data", "batch", "training", "bench", "export", "problems", "modeling", "runs", "inference", "serving"]
)
def test_each_package_face_names_what_its_modules_hold(package):
    face = importlib.import_module(f"lora_sentiment.{package}")
    assert face.__all__ and all(getattr(face, name) is not None for name in face.__all__)


def test_importing_the_package_and_its_faces_loads_no_torch():
    import subprocess
    import sys

    faces = ", ".join(f"lora_sentiment.{p}" for p in ("data", "batch", "training", "export", "problems", "inference"))
    code = f"import sys, lora_sentiment, lora_sentiment.cli, {faces}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
