"""The Powertools Logger and Metrics of the agent's functions (the API and the worker); the Tracer
is agent.tracing's, imported only where a snapshot holds its cost. The compactor has its own
(compactor.handler): another service name, the same namespace."""

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics

from agent.shared import AGENT_SERVICE as SERVICE
from agent.shared import METRICS_NAMESPACE

# RFC 3339 timestamps: without one, Lambda's log-level filter reads a line as INFO whatever its level.
logger = Logger(service=SERVICE, use_rfc3339=True)
metrics = Metrics(service=SERVICE, namespace=METRICS_NAMESPACE)


def thread_metrics() -> EphemeralMetrics:
    """The metrics of one asynchronous turn run on a thread of the API's process (no worker Lambda:
    `make dev`, tests), flushed when it ends: `metrics` is one set per process, which a request
    flushes when it ends, whatever a thread beside it is adding."""
    return EphemeralMetrics(service=SERVICE, namespace=METRICS_NAMESPACE)
