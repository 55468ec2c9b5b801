"""Framework adapters, each an optional extra of durable-memory (README: Use it from your agent)."""
