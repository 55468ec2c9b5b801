class MemoryUnavailable(Exception):
    """DynamoDB failed or could not be reached: a read fails the request, a best-effort write does not."""


class InvalidToken(ValueError):
    """A `next_token` this API did not issue: the client's bad input."""


class SessionNotFound(Exception):
    """The session does not exist for this caller (or belongs to someone else)."""


class Erased(Exception):
    """The session, or its user, was erased after this request read it: what the request wrote is
    gone again, and it must write nothing more (README: Data model, the fence)."""
