"""The one place that builds the Powertools Logger, Metrics and Tracer."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "agent"
NAMESPACE = "AgentMemory"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
tracer = Tracer(service=SERVICE)
