import os

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

# The `reliability` fixture and `--reliability-report` (docs/RELIABILITY.md, `make reliability`).
pytest_plugins = ["reliability"]
