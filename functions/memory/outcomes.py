"""What a best-effort memory write came to: the outcome the library returns, and the event it logs
when the write failed and was suppressed (the CDK stack's metric filter and alarm count that event).
No imports beyond typing: the CDK app imports this file too."""

from typing import Literal

WriteOutcome = Literal["ok", "suppressed"]
WRITE_SUPPRESSED_EVENT = "memory_write_suppressed"
