"""The Powertools Logger and Metrics of the agent's functions (the API and the worker); the Tracer
is agent.tracing's, imported only where a snapshot holds its cost."""

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics

from agent.shared import AGENT_SERVICE as SERVICE
from agent.shared import METRICS_NAMESPACE

# RFC 3339 timestamps: without one, Lambda's log-level filter reads a line as INFO whatever its level.
logger = Logger(service=SERVICE, use_rfc3339=True)
metrics = Metrics(service=SERVICE, namespace=METRICS_NAMESPACE)
