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
