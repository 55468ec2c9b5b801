"""What the Messages API requires of a prompt: the oracle of the context-window tests."""


def api_problems(messages: list[dict]) -> list[str]:
    """Every rule the prompt breaks; written apart from memory.window, which it checks."""
    problems, seen_ids, asked = [], set(), set()  # asked: the tool_use ids of the message before
    if not messages or messages[0]["role"] != "user":
        problems.append("the prompt does not start with a user message")
    if messages and messages[-1]["role"] != "user":
        problems.append("the prompt does not end with a user message")
    for index, message in enumerate(messages):
        blocks = message["content"] if isinstance(message["content"], list) else []
        if not message["content"]:
            problems.append(f"message {index} is empty")
        if index and message["role"] == messages[index - 1]["role"]:
            problems.append(f"message {index} repeats the role {message['role']}")
        calls = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        if calls & seen_ids:
            problems.append(f"message {index} reuses a tool_use id")
        seen_ids |= calls
        results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        if message["role"] == "user" and results != asked:
            problems.append(f"message {index} does not answer exactly the tool_use blocks before it")
        if message["role"] == "assistant" and calls and index == len(messages) - 1:
            problems.append("a tool_use is left unanswered")
        asked = calls
    return problems
