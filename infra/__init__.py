"""CDK infrastructure of the agent: one construct per concern, composed by `infra.stack`."""
