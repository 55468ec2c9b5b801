"""Offline stand-ins for a model, one per framework, that answer from what memory gave them: the
examples and the tests run with no model API and no key.

Every one follows the same script: "weather in <city>" calls the `weather` tool, a tool result is
answered with its content, and anything else is answered with the user's earlier messages, so a
reply shows what the agent remembered."""

import re

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
