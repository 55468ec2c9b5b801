"""Strands Agents with durable memory: a fresh Agent per request, the conversation from DynamoDB.

    make examples        # or: AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 python examples/strands_agent.py
"""

from strands import Agent, tool

from durable_memory.adapters.strands import DurableSessionManager
from offline import run_example, weather
from offline.strands_model import OfflineModel  # any Strands model: BedrockModel, AnthropicModel...


def answer(memory, user_id: str, session_id: str, text: str) -> str:
    agent = Agent(model=OfflineModel(), tools=[tool(weather)], callback_handler=None,
                  session_manager=DurableSessionManager(memory, user_id=user_id, session_id=session_id))
    return str(agent(text)).strip()


if __name__ == "__main__":
    run_example(answer)
