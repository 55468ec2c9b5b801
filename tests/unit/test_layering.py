"""The layers, read from the imports of every module (ast): the memory library stands on botocore and
the standard library alone; the agent's functions reach AWS only through the memory library, except
the modules named here; no module imports itself back through others."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("agent", "compactor", "memory", "local", "infra")
# The agent's modules that call an AWS API of their own, and why it is theirs.
BOTOCORE_ALLOWED = {
    "agent.providers.bedrock": "Bedrock is the model",
    "agent.providers.anthropic": "the API key's secret in Secrets Manager",
    "agent.wiring": "the Lambda Invoke client that hands a turn to the worker",
    "agent.idempotency": "its records are DynamoDB items of its own, written beside the turn",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "functions" if path.is_relative_to(ROOT / "functions") else ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for folder in ("functions", "local", "infra")
           for path in sorted((ROOT / folder).rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module `name` imports, anywhere in it (a lazy import inside a function counts too)."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            base = base.removeprefix("functions.")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return found


def layer(module: str) -> str:
    return module.split(".")[0]


def test_the_memory_library_imports_nothing_above_it():
    upward = {name: sorted(m for m in imports(name) if layer(m) in FIRST_PARTY and layer(m) != "memory")
              for name in MODULES if layer(name) == "memory"}
    assert {name: found for name, found in upward.items() if found} == {}


def test_the_agents_functions_reach_aws_only_through_the_memory_library_or_a_named_module():
    direct = {name for name in MODULES if layer(name) in ("agent", "compactor")
              and any(layer(m) in ("botocore", "boto3") for m in imports(name))}
    assert direct == set(BOTOCORE_ALLOWED)


def test_no_import_cycle():
    graph = {name: {m for m in imports(name) if m in MODULES and m != name} for name in MODULES}
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
