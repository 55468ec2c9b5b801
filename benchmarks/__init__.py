"""Reproducible measurements of the agent: `python -m benchmarks.run` (make bench)."""
