"""The Powertools Logger, Metrics and Tracer of the agent's functions (the API and the worker)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

from agent.shared import AGENT_SERVICE as SERVICE
from agent.shared import METRICS_NAMESPACE

# RFC 3339 timestamps: without one, Lambda's log-level filter reads a line as INFO whatever its level.
logger = Logger(service=SERVICE, use_rfc3339=True)
metrics = Metrics(service=SERVICE, namespace=METRICS_NAMESPACE)
# Only what the agent calls: botocore (DynamoDB, Bedrock, Secrets Manager). The default, every
# library X-Ray knows, imports each one installed at every cold start (sqlite3 always; httpx and
# requests where present) for nothing: the anthropic SDK sends through its own httpx2, which X-Ray
# cannot patch (benchmarks/cold_start.py).
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
