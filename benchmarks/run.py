"""`make bench`: one DynamoDB Local behind local.strict_dynamodb (which cancels conflicting
transactions as DynamoDB does), every benchmark against it, the targets with pass/miss.

Prints the machine and a table per benchmark, and saves the same markdown as
benchmarks/results/<date>.md and benchmarks/results/latest.md (figures for the next run's
comparison in latest.json). Exits 1 if a benchmark could not run; a missed target is a finding,
reported, not a failure of the run."""

import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks import capacity, cold_start, conflicts, frameworks, overhead, round_trips, slow_model, throughput
from benchmarks.harness import Section, table
from local.dynamodb import dynamodb_local_jar, embedded_dynamodb, free_port
from local.strict_dynamodb import TRANSACTION_MS, WRITE_MS, strict_dynamodb

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET_SECONDS = 5 * 60
PACKAGES = ("boto3", "botocore", "aws-lambda-powertools", "aws-xray-sdk", "pydantic", "anthropic", "strands-agents",
            "langchain-core", "openai-agents", "langchain-community", "strands-session-dynamodb")
# Round trips first: it is quick and proves the turn works before anything is timed.
BENCHMARKS = (round_trips, capacity, overhead, throughput, conflicts, cold_start, slow_model, frameworks)


def main() -> int:
    started = time.perf_counter()
    sections: list[Section] = []
    failed = []
    with embedded_dynamodb(port=free_port(), data_dir=None) as (upstream, kind), strict_dynamodb(upstream) as strict:
        endpoint = strict.endpoint
        machine = describe_machine(kind)
        print(machine, flush=True)
        for benchmark in BENCHMARKS:
            name = benchmark.__name__.rsplit(".", 1)[-1]
            print(f"\n... {name}", file=sys.stderr, flush=True)
            section = _guarded(name, failed, lambda: benchmark.run(endpoint))
            sections.append(section)
            print("\n" + section.markdown(), flush=True)
        window = _window(endpoint, failed)
        if window:
            sections.append(window)
            print("\n" + window.markdown(), flush=True)

    elapsed = time.perf_counter() - started
    summary = _summary(sections, elapsed)
    print("\n" + summary, flush=True)
    report = "\n\n".join(["# Benchmarks", machine, summary, *(s.markdown() for s in sections)]) + "\n"
    _save(report, sections)
    return 1 if failed else 0


def describe_machine(dynamodb_kind: str) -> str:
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    try:
        dynamodb = f"{dynamodb_kind} ({dynamodb_local_jar().parent.name})"
    except FileNotFoundError:
        dynamodb = dynamodb_kind
    rows = [
        ["date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")],
        ["CPU", f"{_cpu_model()}, {os.cpu_count()} cores"],
        ["memory", _memory()],
        ["load average at start (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())],
        ["OS", platform.platform()],
        ["Python", f"{platform.python_implementation()} {platform.python_version()}"],
        ["packages", versions],
        ["DynamoDB", dynamodb],
        ["transaction conflicts", f"as DynamoDB's (local.strict_dynamodb): a transaction holds its items "
                                  f"{TRANSACTION_MS:g} ms, a single write {WRITE_MS:g} ms"],
    ]
    return "## Machine\n\n" + table(["", ""], rows)


def _guarded(name: str, failed: list, run) -> Section:
    try:
        return run()
    except Exception:
        failed.append(name)
        return Section(title=f"{name}: could not run", tables=["```\n" + traceback.format_exc()[-3000:] + "```"])


def _window(endpoint: str, failed: list) -> Section | None:
    """The context-window benchmark (benchmarks/window.py, its own issue), if it is there."""
    if importlib.util.find_spec("benchmarks.window") is None:
        return None
    environment = dict(os.environ)
    try:
        module = importlib.import_module("benchmarks.window")
        if not callable(getattr(module, "run", None)):
            return None
        print("\n... window", file=sys.stderr, flush=True)
        return Section(title="Context windows (benchmarks/window.py)", tables=[module.run(endpoint)])
    except Exception:
        failed.append("window")
        return Section(title="window: could not run", tables=["```\n" + traceback.format_exc()[-3000:] + "```"])
    finally:
        os.environ.clear()
        os.environ.update(environment)


def _summary(sections: list[Section], elapsed: float) -> str:
    checks = [c for s in sections for c in s.checks]
    rows = [[c.name, c.measured, c.target, c.verdict] for c in checks]
    rows.append(["`make bench` wall time", f"{elapsed:.0f} s", f"< {BUDGET_SECONDS} s",
                 "pass" if elapsed < BUDGET_SECONDS else "MISS"])
    met = sum(c.passed for c in checks)
    return (f"## Targets: {met} of {len(checks)} met\n\n" + table(["target", "measured", "wanted", "verdict"], rows)
            + "\n\nEach section below says how it measured, and for a miss, what stands in the way.")


def _save(report: str, sections: list[Section]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H%M")
    (RESULTS / f"{stamp}.md").write_text(report)
    (RESULTS / "latest.md").write_text(report)
    data = {key: value for section in sections for key, value in section.data.items()}
    if data:
        (RESULTS / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nsaved benchmarks/results/{stamp}.md and benchmarks/results/latest.md", file=sys.stderr)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
