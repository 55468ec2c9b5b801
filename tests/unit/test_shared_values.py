"""No value the CDK app and the functions share is typed twice: each is written once, in its home
module, and everything else imports it from there (a second copy drifts, and a deployment then
disagrees with its code without any test noticing)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ["app.py", "functions/**/*.py", "infra/*.py", "local/*.py", "benchmarks/*.py"]
SHARED, MEMORY = "functions/agent/shared.py", "functions/memory"
HOMES = {
    ("anthropic", "bedrock", "offline"): SHARED,
    "claude-sonnet-4-5": SHARED,
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0": SHARED,
    "AgentMemory": SHARED,
    ("last_k", "token_budget", "compaction"): f"{MEMORY}/window.py",
    "TURN#": f"{MEMORY}/keys.py",
    "memory_write_suppressed": f"{MEMORY}/outcomes.py",
    "[a-z0-9_.-]*[a-z0-9_-][a-z0-9_.-]*": f"{MEMORY}/long_term.py",
}


def literals(source: str):
    """Every string literal, and every tuple of literals, written in `source` (not in comments)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
            yield tuple(e.value for e in node.elts)


def test_each_shared_value_is_written_in_its_home_module_only():
    written_in = {value: [] for value in HOMES}
    for path in sorted({path for pattern in CODE for path in ROOT.glob(pattern)}):
        for literal in literals(path.read_text()):
            if literal in written_in:
                written_in[literal].append(path.relative_to(ROOT).as_posix())
    assert written_in == {value: [home] for value, home in HOMES.items()}
