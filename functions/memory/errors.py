class MemoryUnavailable(Exception):
    """DynamoDB failed or could not be reached: a read fails the request, a best-effort write does not."""


class InvalidToken(ValueError):
    """A `next_token` this API did not issue: the client's bad input."""


class SessionNotFound(Exception):
    """The session does not exist for this caller (or belongs to someone else)."""


class WriteRejected(Exception):
    """A write under the session's fence was cancelled by a condition: one of the caller's own, or the
    session's (`create_session=False` and the session is gone). `reasons` holds DynamoDB's cancellation
    reason per item, in the order written, the registry's last; a reason may carry the old `Item`."""

    def __init__(self, reasons: list[dict]):
        super().__init__([reason.get("Code") for reason in reasons])
        self.reasons = reasons

    @property
    def session_gone(self) -> bool:
        return self.reasons[-1].get("Code") == "ConditionalCheckFailed"
