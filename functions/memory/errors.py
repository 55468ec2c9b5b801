class MemoryUnavailable(Exception):
    """DynamoDB failed or could not be reached: a read fails the request, a best-effort write does not."""


class SessionNotFound(Exception):
    """The session does not exist for this caller (or belongs to someone else)."""
