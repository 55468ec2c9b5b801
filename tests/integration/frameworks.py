"""The three framework adapters as each framework drives them, for tests/integration/test_adapters.py.

`store` adds a turn's messages one at a time, as a framework's loop does; a turn is the README
example's own `answer()` (examples/): a fresh agent with the offline model and
the adapter. Run as a script, this file answers one turn in a new process, as a Lambda would:
    python tests/integration/frameworks.py <framework> <user_id> <session_id> <text>"""

import asyncio
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))  # the examples and their offline models

SESSIONS_TABLE, LONG_TERM_TABLE = "it-sessions", "it-long-term"  # tests/integration/conftest.py's


class Strands:
    name = "strands"
    example = "strands_agent"

    def window(self, memory, user: str, session: str, **options) -> list:
        from strands import Agent

        from durable_memory.adapters.strands import DurableSessionManager
        from offline.strands_model import OfflineModel

        manager = DurableSessionManager(memory, user_id=user, session_id=session, **options)
        return Agent(model=OfflineModel(), callback_handler=None, session_manager=manager).messages

    def store(self, memory, user: str, session: str, messages: list) -> str | None:
        from durable_memory.adapters.strands import DurableSessionManager

        manager = DurableSessionManager(memory, user_id=user, session_id=session)
        for message in messages:
            manager.append_message(message, agent=None)
        return manager.log.last_write

    def clear(self, memory, user: str, session: str) -> None:
        memory.conversations.delete(user, session)  # Strands' SessionManager has no clear

    def turn(self, n: int) -> list:
        """A whole turn with a tool call and its result, and what Strands adds to messages."""
        meta = {"metadata": {"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}}}
        return [
            {"role": "user", "content": [{"text": f"weather in city{n}?"}], "tracking_id": f"u{n}"},
            {"role": "assistant", "content": [{"text": "Let me look."},
                                              {"toolUse": {"toolUseId": f"t{n}", "name": "weather", "input": {"city": f"city{n}"}}}],
             "tracking_id": f"a{n}", **meta},
            {"role": "user", "content": [{"toolResult": {"toolUseId": f"t{n}", "status": "success",
                                                         "content": [{"json": {"sky": "sunny", "celsius": 21.5}}]}}],
             "tracking_id": f"r{n}"},
            {"role": "assistant", "content": [{"text": f"Sunny in city{n}."}], "tracking_id": f"f{n}", **meta},
        ]

    def opens_with_a_question(self, messages: list) -> bool:
        return messages[0]["role"] == "user" and not any("toolResult" in block for block in messages[0]["content"])


class LangChain:
    name = "langchain"
    example = "langchain_chat"

    def history(self, memory, user: str, session: str, **options):
        from durable_memory.adapters.langchain import DurableChatMessageHistory

        return DurableChatMessageHistory(memory, user_id=user, session_id=session, **options)

    def window(self, memory, user: str, session: str, **options) -> list:
        return self.history(memory, user, session, **options).messages

    def store(self, memory, user: str, session: str, messages: list) -> str | None:
        history = self.history(memory, user, session)
        for message in messages:
            history.add_messages([message])
        return history.log.last_write

    def clear(self, memory, user: str, session: str) -> None:
        self.history(memory, user, session).clear()

    def turn(self, n: int) -> list:
        from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

        return [
            HumanMessage(f"weather in city{n}?", id=f"h{n}"),
            AIMessage("Let me look.", tool_calls=[{"id": f"t{n}", "name": "weather", "args": {"city": f"city{n}"}}],
                      response_metadata={"model": "offline"}, id=f"a{n}"),
            ToolMessage('{"sky": "sunny"}', tool_call_id=f"t{n}", artifact={"raw": [1, 2]}),
            AIMessage(f"Sunny in city{n}.", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}),
        ]

    def opens_with_a_question(self, messages: list) -> bool:
        return messages[0].type == "human"


class OpenAIAgents:
    name = "openai_agents"
    example = "openai_agents_session"

    def session(self, memory, user: str, session: str, **options):
        from durable_memory.adapters.openai_agents import DurableSession

        return DurableSession(memory, user_id=user, session_id=session, **options)

    def window(self, memory, user: str, session: str, **options) -> list:
        return asyncio.run(self.session(memory, user, session, **options).get_items())

    def store(self, memory, user: str, session: str, messages: list) -> str | None:
        session = self.session(memory, user, session)
        for item in messages:
            asyncio.run(session.add_items([item]))
        return session.log.last_write

    def clear(self, memory, user: str, session: str) -> None:
        asyncio.run(self.session(memory, user, session).clear_session())

    def turn(self, n: int) -> list:
        return [
            {"role": "user", "content": f"weather in city{n}?"},
            {"type": "reasoning", "id": f"rs_{n}", "summary": [{"type": "summary_text", "text": "use the tool"}]},
            {"type": "function_call", "id": f"fc_{n}", "call_id": f"t{n}", "name": "weather",
             "arguments": f'{{"city":"city{n}"}}', "status": "completed"},
            {"type": "function_call_output", "call_id": f"t{n}", "output": "sunny"},
            {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": f"Sunny in city{n}.", "annotations": []}]},
        ]

    def opens_with_a_question(self, messages: list) -> bool:
        return messages[0].get("role") == "user"


FRAMEWORKS = {framework.name: framework for framework in (Strands(), LangChain(), OpenAIAgents())}


def answer(framework: str, memory, user: str, session: str, text: str) -> str:
    """One turn with a fresh agent: the README example's answer()."""
    return importlib.import_module(FRAMEWORKS[framework].example).answer(memory, user, session, text)


if __name__ == "__main__":
    import durable_memory

    framework, user_id, session_id, text = sys.argv[1:]
    memory = durable_memory.connect(sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)
    print(answer(framework, memory, user_id, session_id, text))
