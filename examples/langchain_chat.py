"""LangChain with durable memory: RunnableWithMessageHistory over DurableChatMessageHistory.

    make examples        # or: AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 python examples/langchain_chat.py
"""

import warnings

from langchain_core._api import LangChainDeprecationWarning
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import ConfigurableFieldSpec, RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from durable_memory.adapters.langchain import DurableChatMessageHistory
from offline import run_example, weather
from offline.langchain_model import OfflineChatModel  # any chat model: ChatAnthropic, ChatBedrock...

model = OfflineChatModel()
# langchain-core 1.6.4 deprecated chat histories for LangGraph's persistence; they stay until 2.0.
warnings.filterwarnings("ignore", category=LangChainDeprecationWarning)


def tool_loop(inputs: dict) -> list:
    """The model's messages and the tool results of one turn: stored with the question, as one turn."""
    messages, turn = [*inputs["history"], HumanMessage(inputs["input"])], []
    while True:
        reply = model.invoke(messages + turn)
        turn.append(reply)
        if not reply.tool_calls:
            return turn
        turn += [ToolMessage(weather(**call["args"]), tool_call_id=call["id"]) for call in reply.tool_calls]


def answer(memory, user_id: str, session_id: str, text: str) -> str:
    chat = RunnableWithMessageHistory(
        RunnableLambda(tool_loop),
        lambda user_id, session_id: DurableChatMessageHistory(memory, user_id=user_id, session_id=session_id),
        input_messages_key="input",
        history_messages_key="history",
        history_factory_config=[ConfigurableFieldSpec(id="user_id", annotation=str),
                                ConfigurableFieldSpec(id="session_id", annotation=str)],
    )
    reply = chat.invoke({"input": text}, config={"configurable": {"user_id": user_id, "session_id": session_id}})
    return reply[-1].content


if __name__ == "__main__":
    run_example(answer)
