"""Test modules share helpers through plain modules (tests/fakes.py, tests/integration/client.py,
...), never by importing a conftest or another test module: a conftest is imported under one name
for every folder, so which one `from conftest import` finds depends on what ran before."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names})


def test_no_test_module_imports_a_conftest_or_another_test_module():
    offending = {
        path.relative_to(TESTS).as_posix(): sorted(module for module in imported_modules(path)
                                                   if module.split(".")[-1].startswith(("test_", "conftest")))
        for path in TESTS.rglob("*.py")
    }
    assert {path: modules for path, modules in offending.items() if modules} == {}
