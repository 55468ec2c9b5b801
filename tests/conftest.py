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

# The `reliability` fixture and `--reliability-report` (docs/RELIABILITY.md, `make reliability`).
pytest_plugins = ["reliability"]


def pytest_collection_modifyitems(items):
    """`make test` spreads the tests over pytest-xdist workers (`--dist loadgroup`); the infra tests
    stay together in one, so the CDK app is synthesized once per configuration, not once per worker."""
    infra = Path(__file__).parent / "infra"
    for item in items:
        if item.path.is_relative_to(infra):
            item.add_marker(pytest.mark.xdist_group("synth"))
