"""The window read at MEMORY_MAX_TURNS' upper bound, with turns large enough that the window is more
than one of DynamoDB's 1 MB pages: every one of the K newest turns comes back, in order."""

import time
import uuid

from agent.config import MAX_TURNS_LIMIT
from local_stack import SESSIONS_TABLE
from memory.client import dynamodb_client
from memory.conversation import ConversationStore, turn_item
from memory.dynamo import batch_write_all
from memory.turns import Turn, Usage, iso

TURN_CHARS = 3_000  # 500 of them: ~1.5 MB, past one page


def test_the_window_at_the_bound_reads_every_turn_past_one_page(handler):
    # Given a session of K + 1 turns of 3 KB each, stored directly
    client = dynamodb_client()
    store = ConversationStore(client=client, table_name=SESSIONS_TABLE, ttl_days=30)
    user, now = f"bound-{uuid.uuid4().hex[:8]}", time.time()
    turns = [Turn(user_id=user, session_id="long", turn_id=f"{int(now * 1000) + n:013d}-00000000",
                  created_at=iso(now), usage=Usage(1, 1),
                  messages=[{"role": "user", "content": f"{n:04d} " + "x" * TURN_CHARS},
                            {"role": "assistant", "content": "ok"}])
             for n in range(MAX_TURNS_LIMIT + 1)]
    expires_at, fence = int(now) + 86_400, store.registry.open(user, "long")
    batch_write_all(client, SESSIONS_TABLE, [{"PutRequest": {"Item": turn_item(
        t, expires_at=expires_at, generation=fence.generation)}} for t in turns])
    try:
        # When the window of K turns is read, with and without the summary's read
        window = store.load(user, "long", limit=MAX_TURNS_LIMIT)
        summary, with_summary = store.load_window(user, "long", limit=MAX_TURNS_LIMIT)
        # Then both hold exactly the K newest turns, oldest first
        expected = [t.turn_id for t in turns[1:]]
        assert [t.turn_id for t in window] == expected
        assert summary is None and [t.turn_id for t in with_summary] == expected
    finally:
        batch_write_all(client, SESSIONS_TABLE, [
            {"DeleteRequest": {"Key": {k: v for k, v in turn_item(t, expires_at=0, generation="").items() if k in ("pk", "sk")}}}
            for t in turns])
