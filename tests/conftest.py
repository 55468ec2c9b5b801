import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from agent.shared import METRICS_NAMESPACE

# No test ever reaches AWS: fake credentials and a fixed region for every client.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE=METRICS_NAMESPACE,
)
os.environ.pop("ANTHROPIC_API_KEY", None)

# Property tests judge results, never speed: no per-example deadline, no "input generation is slow"
# failure on a loaded machine (tests run in parallel; see the Makefile's TEST_WORKERS).
settings.register_profile("tests", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tests")

INFRA = Path(__file__).parent / "infra"

# The `reliability` fixture and `--reliability-report` (docs/RELIABILITY.md, `make reliability`).
pytest_plugins = ["reliability"]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the markers
def pytest_collection_modifyitems(items):
    """`make test` spreads the tests over pytest-xdist workers (`--dist loadgroup`), handing them out
    in this order: the `slow` ones first, so none of them starts last and runs on alone. The infra
    tests stay together in one worker, so the CDK app is synthesized once per configuration, not
    once per worker. The tests that wait out a clock (`waits`) share one worker: spread over all of
    them, two such waits at once left a core idle (measured: the cores 50-90% idle for a minute of a
    275 s run).
    The other slow tests of one module share one worker, so its module-scoped fixtures (a fleet of
    instances, a seeded history) are built once, and two workers never run the same heavy module at
    the same time."""
    for item in items:
        if {"synth", "variant"} & set(item.fixturenames):  # the CDK app synthesized: seconds of the machine
            item.add_marker(pytest.mark.slow)
        if item.path.is_relative_to(INFRA):
            item.add_marker(pytest.mark.xdist_group("synth"))
        elif item.get_closest_marker("waits"):
            item.add_marker(pytest.mark.xdist_group("waits"))
        elif item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist groups by a suffix it puts on the node ids (`...@synth`); with a pytest on which that
    suffix no longer takes (pytest-dev/pytest-xdist#1386) it would spread the group silently."""
    infra = [nodeid for nodeid in ids if nodeid.startswith("tests/infra/")]
    if node.config.getvalue("dist") == "loadgroup" and infra and not any(n.endswith("@synth") for n in infra):
        pytest.exit("pytest-xdist cannot group tests with this pytest (pytest-dev/pytest-xdist#1386): "
                    "install requirements.txt's pins", returncode=pytest.ExitCode.USAGE_ERROR)
