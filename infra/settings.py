"""Deploy-time settings, read once from CDK context (`cdk deploy -c key=value`).

Defaults live here, not in cdk.json, so a test's `App(context=...)` and the CLI agree. No CDK import
at run time: `make deploy` validates the settings with this class before it saves them.
"""

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.agent.shared import DEFAULT_MODEL_IDS, PROVIDERS
from functions.memory.window import STRATEGIES

if TYPE_CHECKING:
    from constructs import Node

SECONDS_PER_MINUTE = 60
# The long-term table's name after the stack's: a static name, so that a stack created again after
# `make destroy` imports the table it retained instead of starting an empty one (infra/tables.py).
LONG_TERM_TABLE_SUFFIX = "-long-term"
# A Cognito user pool id, "<region>_<letters and digits>" (CreateUserPool's UserPool.Id:
# https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_UserPoolType.html).
USER_POOL_ID = re.compile(r"[\w-]+_[0-9a-zA-Z]+")
# One address, name@domain.tld: a mistyped one would fail only inside CloudFormation, half way.
EMAIL_ADDRESS = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]+")


@dataclass(frozen=True, kw_only=True)
class Settings:
    model_provider: str = "anthropic"
    model_id: str = DEFAULT_MODEL_IDS["anthropic"]
    # The deployed default keeps older turns as a summary; it adds the stream-fed compactor Lambda.
    memory_strategy: str = "compaction"
    alarm_email: str | None = None
    # Epoch seconds until which every memory write fails (staging alarm drill); None = off.
    memory_write_drill_until: int | None = None
    # An existing OIDC issuer replaces the Cognito user pool the stack would create.
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    # The user pool a destroyed deployment of this stack retained (`make destroy` remembers it): its
    # users keep their `sub`, the key of their long-term facts. None: the stack creates one.
    user_pool_id: str | None = None
    # The worker's reserved concurrency: at most this many asynchronous turns at once, so they can
    # never take the whole account's pool from the API. None: no reservation, as an account with the
    # new-account quota of 10 requires (`make deploy` checks the quota: infra.deployment).
    worker_reserved_concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.model_provider not in PROVIDERS:
            raise ValueError(f"modelProvider must be one of {PROVIDERS}, got {self.model_provider!r}")
        if self.memory_strategy not in STRATEGIES:
            raise ValueError(f"memoryStrategy must be one of {STRATEGIES}, got {self.memory_strategy!r}")
        if bool(self.jwt_issuer) != bool(self.jwt_audience):
            raise ValueError("jwtIssuer and jwtAudience go together")
        if self.worker_reserved_concurrency is not None and self.worker_reserved_concurrency < 1:
            raise ValueError("workerReservedConcurrency must be a positive number of executions")
        if self.user_pool_id is not None and not USER_POOL_ID.fullmatch(self.user_pool_id):
            raise ValueError(f"userPoolId must be a user pool id (eu-west-1_AbC123), got {self.user_pool_id!r}")
        if self.user_pool_id and self.jwt_issuer:
            raise ValueError("userPoolId and jwtIssuer exclude each other: one issuer of tokens")
        if self.alarm_email is not None and not EMAIL_ADDRESS.fullmatch(self.alarm_email):
            raise ValueError(f"alarmEmail must be one e-mail address (name@example.com), got {self.alarm_email!r}")

    @classmethod
    def from_context(cls, node: "Node", *, now: float | None = None) -> "Settings":
        def get(key: str) -> str | None:
            value = node.try_get_context(key)
            return None if value in (None, "") else str(value)

        def whole_number(key: str) -> int | None:
            value = get(key)
            if value is not None and not value.isdigit():
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            return None if value is None else int(value)

        provider = get("modelProvider") or "anthropic"
        drill_minutes = whole_number("alarmDrillMinutes")
        drill_until = None
        if drill_minutes is not None:
            started = time.time() if now is None else now
            drill_until = int(started) + drill_minutes * SECONDS_PER_MINUTE
        audience = get("jwtAudience")
        return cls(
            model_provider=provider,
            model_id=get("modelId") or DEFAULT_MODEL_IDS.get(provider, ""),
            memory_strategy=get("memoryStrategy") or cls.memory_strategy,
            alarm_email=get("alarmEmail"),
            memory_write_drill_until=drill_until,
            jwt_issuer=get("jwtIssuer"),
            user_pool_id=get("userPoolId"),
            jwt_audience=tuple(a.strip() for a in audience.split(",")) if audience else (),
            worker_reserved_concurrency=whole_number("workerReservedConcurrency"),
        )
