"""The OpenAI Agents SDK with durable memory: a DurableSession per request, the history in DynamoDB.

    make examples        # or: AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 python examples/openai_agents_session.py
"""

import asyncio

from agents import Agent, Runner, function_tool, set_tracing_disabled

from durable_memory.adapters.openai_agents import DurableSession
from offline import run_example, weather
from offline.openai_model import OfflineModel  # or a model name: "gpt-5", ...

set_tracing_disabled(True)  # offline: no trace export


def answer(memory, user_id: str, session_id: str, text: str) -> str:
    agent = Agent(name="assistant", model=OfflineModel(), tools=[function_tool(weather)])
    session = DurableSession(memory, user_id=user_id, session_id=session_id)
    return asyncio.run(Runner.run(agent, text, session=session)).final_output


if __name__ == "__main__":
    run_example(answer)
