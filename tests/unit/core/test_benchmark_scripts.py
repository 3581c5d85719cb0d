"""The benchmark scripts import names from one another (`from step_args import ...`): a name moved in one must not
leave another failing at start-up, which nothing else runs in CI (int8_base_train.py did, for a session)."""

import ast
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def test_names_imported_from_sibling_scripts_exist():
    trees = {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in BENCHMARKS.glob("*.py")}
    assert len(trees) > 20
    missing = [
        f"{stem}.py: from {node.module} import {alias.name}"
        for stem, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in trees
        for alias in node.names
        if alias.name not in _top_level_names(trees[node.module])
    ]
    assert not missing, missing


def _strings(tree: ast.Module, known: dict[str, str]) -> list[str]:
    """Every string the script holds, with the module-level ones joined as it joins them (`A + "..."`): a
    child's code is often built that way. `known`: string constants of the scripts, by name."""

    def value(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return known.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = value(node.left), value(node.right)
            return left + right if left is not None and right is not None else None
        return None

    return [v for node in ast.walk(tree) if (v := value(node)) is not None]


def _code_in(tree: ast.Module, known: dict[str, str]) -> list[ast.Module]:
    """The script and every string in it that is Python with an import (the code its children run, `python -c`)."""
    found = [tree]
    for text in _strings(tree, known):
        if "import" in text:
            try:
                found.append(ast.parse(text))
            except SyntaxError:
                pass  # a docstring, or a fragment
    return found


def test_names_used_from_the_package_exist():
    """`from lora_sentiment... import X` and `module.X` on a module imported that way name something that exists,
    in the scripts and in the code they hand a child process (train_memory_trim.py's child still built a class
    renamed two days before, and failed at its first step)."""
    import importlib

    trees = {path.name: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(BENCHMARKS.glob("*.py"))}
    own: dict[str, dict[str, str]] = {name: {} for name in trees}  # module-level string constants, per script

    def known(name: str) -> dict[str, str]:  # its own, and other scripts' where it imports one (a name's first)
        others = {k: v for script in reversed(list(own)) for k, v in own[script].items()}
        return others | own[name]

    for _ in range(3):  # constants built from constants
        for name, tree in trees.items():
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    joined = _strings(ast.Module(body=[ast.Expr(node.value)], type_ignores=[]), known(name))
                    if joined:
                        own[name][node.targets[0].id] = joined[0]
    missing = []
    for name, tree in trees.items():
        for code in _code_in(tree, known(name)):
            modules = {}
            for node in ast.walk(code):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lora_sentiment"):
                    package = importlib.import_module(node.module)
                    for alias in node.names:
                        value = getattr(package, alias.name, None)
                        if value is None:
                            try:
                                value = importlib.import_module(f"{node.module}.{alias.name}")
                            except ModuleNotFoundError:
                                missing.append(f"{name}: from {node.module} import {alias.name}")
                                continue
                        if isinstance(value, type(importlib)):
                            modules[alias.asname or alias.name] = value
            for node in ast.walk(code):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                    if not hasattr(modules[node.value.id], node.attr) and not isinstance(node.ctx, ast.Store):
                        missing.append(f"{name}: {node.value.id}.{node.attr}")
    assert not missing, sorted(set(missing))
