"""The services the agent's functions take, built one way from their environment: the API Lambda
(agent.handler), the worker of asynchronous turns (agent.worker) and the compactor
(compactor.handler) each call services() once, at init."""

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import Settings
from agent.providers import preload
from memory.client import dynamodb_client, session
from memory.conversation import ConversationStore
from memory.long_term import FactLimits, FactStore
from memory.resilient import ResilientMemory
from memory.turn_status import TurnStatusStore
from memory.window import WindowPolicy

# The Lambda Invoke call that hands a turn to the worker (it only queues the event): fail in seconds,
# as memory calls do.
INVOKE_CONNECT_SECONDS, INVOKE_READ_SECONDS, INVOKE_ATTEMPTS = 1, 3, 2


class OnFirstUse:
    """A client that is built on its first use, not at import: a route that never calls it (/health,
    /openapi.json) never pays for it (botocore loads the service's model and endpoint rules: ~0.6x of
    `import boto3`, benchmarks/cold_start.py). A SnapStart init calls build(), so the client is in the
    snapshot and no restored environment builds it."""

    def __init__(self, build: Callable[[], object]):
        self._build, self._client, self._lock = build, None, threading.Lock()

    def build(self):
        with self._lock:  # the facts and the window are read on two threads at once
            if self._client is None:
                self._client = self._build()
        return self._client

    def __getattr__(self, name: str):
        return getattr(self.build(), name)


@dataclass(frozen=True)
class Services:
    settings: Settings
    dynamodb: OnFirstUse
    memory: ResilientMemory
    statuses: TurnStatusStore

    def worker_invoker(self) -> Callable[[dict], None] | None:
        """Queues an event for the worker Lambda (an asynchronous invoke); None when there is no
        worker function (`make dev`, tests: a thread of the API's process runs the turn)."""
        if not self.settings.worker_function:
            return None
        from botocore.config import Config

        client = session().create_client("lambda", config=Config(
            connect_timeout=INVOKE_CONNECT_SECONDS, read_timeout=INVOKE_READ_SECONDS,
            retries={"mode": "standard", "total_max_attempts": INVOKE_ATTEMPTS},
        ))
        function_name = self.settings.worker_function

        def invoke(event: dict) -> None:
            client.invoke(FunctionName=function_name, InvocationType="Event", Payload=json.dumps(event).encode())

        return invoke


def services(*, logger, env=os.environ) -> Services:
    """Settings read and validated once. SnapStart snapshots the init phase once per published
    version, and restored environments skip it: the model SDK and clients built here (~1 s) are in
    the snapshot instead of in each restored environment's first turn. Without SnapStart they stay
    lazy, so a request that needs no model or table never pays for them."""
    settings = Settings.from_env(env)
    dynamodb = OnFirstUse(dynamodb_client)
    if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        preload(settings)
        dynamodb.build()
    memory = memory_from(settings, client=dynamodb, logger=logger)
    statuses = TurnStatusStore(client=dynamodb, table_name=settings.sessions_table, conversations=memory.conversations)
    return Services(settings=settings, dynamodb=dynamodb, memory=memory, statuses=statuses)


def memory_from(settings: Settings, *, client, logger) -> ResilientMemory:
    """The memory of every function, configured alike."""
    return ResilientMemory(
        conversations=ConversationStore(client=client, table_name=settings.sessions_table,
                                        ttl_days=settings.session_ttl_days),
        facts=FactStore(
            client=client,
            table_name=settings.long_term_table,
            limits=FactLimits(max_facts=settings.max_facts, max_value_chars=settings.max_fact_value_chars,
                              max_bytes=settings.max_fact_bytes),
        ),
        logger=logger,
        max_turns=settings.max_turns,
        window=WindowPolicy(strategy=settings.memory_strategy, max_prompt_tokens=settings.max_prompt_tokens),
        write_drill_until=settings.write_drill_until,
    )
