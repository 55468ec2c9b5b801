"""The one place that builds the Powertools Logger and Metrics (and, in agent.tracing, the Tracer)."""

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics

SERVICE = "agent"
NAMESPACE = "AgentMemory"

# RFC 3339 timestamps: without one, Lambda's log-level filter reads a line as INFO whatever its level.
logger = Logger(service=SERVICE, use_rfc3339=True)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
