"""Offline stand-ins for a model, one per framework, that answer from what memory gave them: the
examples and the tests run with no model API and no key.

Every one follows the same script: "weather in <city>" calls the `weather` tool, a tool result is
answered with its content, and anything else is answered with the user's earlier messages, so a
reply shows what the agent remembered."""

import contextlib
import os
import re
import uuid

WEATHER = re.compile(r"weather in (\w+)", re.IGNORECASE)


def weather(city: str) -> str:
    """The weather in a city (always sunny offline)."""
    return f"sunny in {city}"


def decide(history: list[tuple[str, str]]) -> tuple[str, str]:
    """`history`: (kind, text) pairs, oldest first, kind "user", "assistant" or "tool_result".
    Returns ("tool", city) to call the weather tool, or ("text", answer)."""
    kind, text = history[-1]
    if kind == "tool_result":
        return "text", f"It is {text}."
    match = WEATHER.search(text)
    if match:
        return "tool", match.group(1)
    earlier = [said for kind, said in history[:-1] if kind == "user"]
    return "text", "You said before: " + " | ".join(earlier) if earlier else "Nice to meet you."


QUESTIONS = ("Hello, I am Ada.", "What is the weather in Paris?", "What did I tell you so far?")


def run_example(answer) -> None:
    """Asks QUESTIONS through `answer(memory, user_id, session_id, text)`, each time with a fresh agent
    (as a new Lambda would have), prints the replies, then erases what it stored."""
    import durable_memory

    with dynamodb():
        durable_memory.ensure_tables(sessions_table="example-sessions", long_term_table="example-long-term")
        memory = durable_memory.connect(sessions_table="example-sessions", long_term_table="example-long-term")
        user_id, session_id = f"user-{uuid.uuid4().hex[:8]}", "chat-1"
        for question in QUESTIONS:
            print(f"> {question}\n{answer(memory, user_id, session_id, question)}")
        memory.erase_user(user_id)  # the right to erasure: every session of the user


@contextlib.contextmanager
def dynamodb():
    """AWS_ENDPOINT_URL_DYNAMODB if set (e.g. `make dev`'s DynamoDB Local), else this repository's
    embedded DynamoDB Local for the run, with the fake credentials it accepts."""
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        yield
        return
    from local.dynamodb import embedded_dynamodb, free_port

    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "local"),
                        ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    with embedded_dynamodb(port=free_port(), data_dir=None) as (endpoint, _):
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        try:
            yield
        finally:
            del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
