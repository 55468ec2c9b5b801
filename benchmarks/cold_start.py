"""Cold start: the import of each function's handler module in a fresh process (the API's per model
provider), against `import boto3` alone, the samples of every variant interleaved so that drift hits
all alike.

Each sample is a new interpreter with a Lambda-like environment (LAMBDA_TASK_ROOT set, so X-Ray
tracing is on and Powertools patches what it traces, as in the deployed function); the time is taken
inside the process around the import, so the interpreter's own start-up, the same for all, is out."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Check, Section, environment, median, percentile, table

ROOT = Path(__file__).resolve().parent.parent
# Median of 9 fresh processes per row (issue 18).
SAMPLES = 9
# A function without SnapStart pays its handler module's import on every cold start; the API handler's
# import is paid once per version, into its snapshot (infra/agent_function.py), and may be larger.
WITHOUT_SNAPSTART_RATIO, API_RATIO = 1.5, 2.5

PROBE = """
import json, sys, time
started = time.perf_counter()
{imports}
imported = time.perf_counter()
{first_use}
used = time.perf_counter()
print(json.dumps({{"import": imported - started, "first_use": used - imported,
                   "modules": len(sys.modules), "anthropic": "anthropic" in sys.modules,
                   "xray": "aws_xray_sdk" in sys.modules,
                   "openapi_models": "aws_lambda_powertools.event_handler.openapi.models" in sys.modules}}))
"""

FLOOR = "import boto3 (the floor)"
CLIENT = "from memory.client import dynamodb_client; dynamodb_client()"
OBSERVABILITY = CLIENT + "; import agent.observability"
TRACING = OBSERVABILITY + "; import agent.tracing"
RESOLVER = (TRACING + "; from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; "
            "from aws_lambda_powertools.event_handler.openapi.params import Path; import pydantic; "
            "APIGatewayHttpResolver(enable_validation=True)")
HANDLER = "import agent.handler as handler"
SNAPSTART_INIT = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}

CLIENT_ROW = "made of: one DynamoDB client (memory.client, botocore)"
OBSERVABILITY_ROW = "... + Powertools Logger and Metrics"
TRACING_ROW = "... + Powertools Tracer (X-Ray SDK, botocore patched)"
RESOLVER_ROW = "... + Powertools' validating HTTP resolver (pydantic)"
API = "API: agent.handler"
WORKER = "worker: agent.worker (SnapStart)"
COMPACTOR = "compactor: compactor.handler (no SnapStart)"
# name: (provider, the imports, what the first turn builds before the model runs, extra environment)
VARIANTS = {
    FLOOR: ("offline", "import boto3", "pass", {}),
    CLIENT_ROW: ("offline", CLIENT, "pass", {}),
    OBSERVABILITY_ROW: ("offline", OBSERVABILITY, "pass", {}),
    TRACING_ROW: ("offline", TRACING, "pass", {}),
    RESOLVER_ROW: ("offline", RESOLVER, "pass", {}),
    f"{API}, offline": ("offline", HANDLER, "handler.model()", {}),
    f"{API}, bedrock": ("bedrock", HANDLER, "handler.model()", {}),
    f"{API}, anthropic": ("anthropic", HANDLER, "handler.model()", {}),
    f"{API}, anthropic, SnapStart init": ("anthropic", HANDLER, "handler.model()", SNAPSTART_INIT),
    f"{WORKER}, anthropic": ("anthropic", "import agent.worker", "pass", {}),
    f"{COMPACTOR}, anthropic": ("anthropic", "import compactor.handler", "pass", {}),
}
# The targets: (row, limit). The worker has SnapStart like the API: reported, its import is in its snapshot.
TARGETS = [(f"{API}, offline", API_RATIO), (f"{API}, bedrock", API_RATIO), (f"{API}, anthropic", API_RATIO),
           (f"{COMPACTOR}, anthropic", WITHOUT_SNAPSTART_RATIO)]


def run(endpoint: str) -> Section:
    samples = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="lambda-task-root-") as task_root:
        for _ in range(SAMPLES):
            for name, (provider, imports, first_use, extra) in VARIANTS.items():
                samples[name].append(_probe(endpoint, task_root, provider, imports, first_use, extra))

    floor = median([s["import"] for s in samples[FLOOR]])
    rows, ratios = [], {}
    for name, runs in samples.items():
        imports = [s["import"] for s in runs]
        both = [s["import"] + s["first_use"] for s in runs]
        ratios[name] = median(imports) / floor
        rows.append([
            name,
            f"{median(imports) * 1000:.0f} ms",
            f"{percentile(imports, 0.9) * 1000:.0f} ms",
            f"**{ratios[name]:.2f}x**",
            f"{median(both) * 1000:.0f} ms ({median(both) / floor:.2f}x)" if name.startswith(API) else "",
            "yes" if runs[-1]["xray"] else "no",
            runs[-1]["modules"],
        ])
    checks = [Check(f"cold start, {row} import / bare boto3", f"{ratios[row]:.2f}x", f"<= {limit}x",
                    ratios[row] <= limit) for row, limit in TARGETS]
    lazy, snap = samples[f"{API}, anthropic"], samples[f"{API}, anthropic, SnapStart init"]
    lazy_first = median([s["first_use"] for s in lazy])
    snap_first = median([s["first_use"] for s in snap])
    return Section(
        title="Cold start: importing each function's handler module",
        tables=[table(["fresh process (Lambda-like environment, X-Ray on)", "import, median", "p90", "/ boto3",
                       "import + first model built, median", "X-Ray SDK loaded", "modules loaded"], rows)],
        checks=checks,
        data={"cold_start_ratios": {name: round(ratio, 2) for name, ratio in ratios.items()}},
        notes=[
            f"Median of {SAMPLES} fresh processes per row, interleaved; ratios are to the median of "
            "`import boto3` in the same run. Each handler builds its settings and (the API) its routes at "
            "import, module level, so a warm invocation reuses them; its DynamoDB client is built on first use "
            "(agent.wiring.OnFirstUse), so /health and /openapi.json never build it, and at a SnapStart init "
            "(AWS_LAMBDA_INITIALIZATION_TYPE=snap-start), so the snapshot holds it. The 'made of' rows add the "
            "pieces one by one, the client included. 'first model built' adds what the first turn builds "
            "before calling the model (`handler.model()`, no network call).",
            f"Targets: a function without SnapStart (the compactor) at most {WITHOUT_SNAPSTART_RATIO}x, the "
            f"API handler at most {API_RATIO}x. The worker has SnapStart like the API (its init runs once "
            "per version, into the snapshot), so its row is reported, not held to a target.",
            "Not imported at init because no route needs it there: Powertools' OpenAPI models (the security "
            "scheme is a plain dict, validated into them only when `/openapi.json` is built), the model SDK "
            "(first turn, or a SnapStart init), the X-Ray SDK in the compactor (it never traced; its Logger and "
            "Metrics come from their own Powertools modules, without the Tracer).",
            "SnapStart (the API and the worker, infra/agent_function.py) runs this init once per version "
            "and restores the snapshot instead, so these import times are paid only where there is no "
            "snapshot ($LATEST, local runs, the publish itself). It cannot help with work left for after the "
            f"restore: with the anthropic provider, importing the SDK on the first turn costs {lazy_first * 1000:.0f} ms "
            "(median). Both functions therefore preload it during init when "
            "`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start` (agent.providers.preload): the import grows, once, into "
            f"the snapshot, and the first turn's model build drops to {snap_first * 1000:.0f} ms.",
        ],
    )


def _probe(endpoint: str, task_root: str, provider: str, imports: str, first_use: str, extra: dict) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "POWERTOOLS_TRACE", "AWS_LAMBDA_"))},
        **environment(endpoint),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": task_root,
        "AWS_LAMBDA_FUNCTION_NAME": "agent-bench",
        "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key",
        "AGENT_MODEL_PROVIDER": provider,
        **extra,
    }
    code = PROBE.format(imports=imports, first_use=first_use)
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"the cold-start probe failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
