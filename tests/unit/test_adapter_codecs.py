"""The adapters' message mapping, without DynamoDB: any turn of each framework, tool calls and results
included, becomes a well-formed Messages API turn (what the window cuts by) and comes back equal.

The frameworks are imported where they are used: every pytest-xdist worker collects this module, and
importing the three takes seconds."""

import functools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_memory.adapters._session import decode, encode
from memory.window import well_formed

text = st.text(min_size=1, max_size=40)
args = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.booleans()), max_size=3)
# A turn: the question, rounds of tool calls (name, arguments, result, failed?), the answer.
calls = st.lists(st.tuples(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), args, text, st.booleans()),
                 min_size=1, max_size=3)
turns = st.tuples(text, st.lists(calls, max_size=3), text)


def strands_turn(question, rounds, answer) -> list[dict]:
    messages = [{"role": "user", "content": [{"text": question}]}]
    for r, round_ in enumerate(rounds):
        messages.append({"role": "assistant", "content": [
            {"toolUse": {"toolUseId": f"t{r}-{c}", "name": name, "input": arguments}}
            for c, (name, arguments, _, _) in enumerate(round_)]})
        messages.append({"role": "user", "content": [
            {"toolResult": {"toolUseId": f"t{r}-{c}", "status": "error" if failed else "success",
                            "content": [{"text": result}]}} for c, (_, _, result, failed) in enumerate(round_)]})
    return messages + [{"role": "assistant", "content": [{"text": answer}]}]


def langchain_turn(question, rounds, answer) -> list:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    messages = [HumanMessage(question)]
    for r, round_ in enumerate(rounds):
        messages.append(AIMessage("", tool_calls=[{"id": f"t{r}-{c}", "name": name, "args": arguments}
                                                  for c, (name, arguments, _, _) in enumerate(round_)]))
        messages += [ToolMessage(result, tool_call_id=f"t{r}-{c}", status="error" if failed else "success")
                     for c, (_, _, result, failed) in enumerate(round_)]
    return messages + [AIMessage(answer)]


def openai_turn(question, rounds, answer) -> list[dict]:
    items = [{"role": "user", "content": question}]
    for r, round_ in enumerate(rounds):
        items += [{"type": "function_call", "call_id": f"t{r}-{c}", "name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
                  for c, (name, arguments, _, _) in enumerate(round_)]
        items += [{"type": "function_call_output", "call_id": f"t{r}-{c}", "output": result}
                  for c, (_, _, result, _) in enumerate(round_)]
    return items + [{"role": "assistant", "content": answer}]


@functools.cache
def codecs() -> tuple:
    """Each framework's codec: Strands, LangChain, OpenAI Agents."""
    from durable_memory.adapters.langchain import LangChainCodec
    from durable_memory.adapters.openai_agents import OpenAICodec
    from durable_memory.adapters.strands import StrandsCodec

    return StrandsCodec(), LangChainCodec(), OpenAICodec()


@settings(max_examples=60)
@given(turn=turns)
def test_any_turn_becomes_a_well_formed_turn_and_comes_back_equal(turn):
    for codec, build in zip(codecs(), (strands_turn, langchain_turn, openai_turn)):
        natives = build(*turn)
        messages = encode(codec, natives)
        assert well_formed(messages), codec.key
        assert decode(codec, json.loads(json.dumps(messages))) == natives, codec.key
        # These shapes map exactly: no message needs to keep the framework's own copy
        assert not any(codec.key in message for message in messages), codec.key


def test_what_the_messages_api_has_no_place_for_is_kept_alongside():
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    strands = [{"role": "user", "content": [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}},
                                            {"cachePoint": {"type": "default"}}], "tracking_id": "u1"},
               {"role": "assistant", "content": [{"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
                                                 {"text": "a cat"}], "metadata": {"usage": {"outputTokens": 2}}}]
    langchain = [SystemMessage("be brief"), HumanMessage([{"type": "text", "text": "hi"}], id="h1"),
                 AIMessage([{"type": "text", "text": "hello"}], response_metadata={"stop": "end"})]
    openai = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
              {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "..."},
              {"type": "web_search_call", "id": "ws_1", "status": "completed"},
              {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
               "content": [{"type": "output_text", "text": "hello", "annotations": [{"type": "url_citation"}]}]}]
    for codec, natives in zip(codecs(), (strands, langchain, openai)):
        messages = encode(codec, natives)
        assert well_formed(messages), codec.key
        assert decode(codec, json.loads(json.dumps(messages))) == natives, codec.key


def test_a_strands_image_is_a_messages_api_image():
    strands, _, _ = codecs()
    message = {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]}
    (encoded,) = encode(strands, [message])
    assert encoded == {"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}}]}
