"""The offline model streams its answer as a real model does (so the live reply and truncation can be
tried locally) and counts in words that agree with the numbers."""

import time

import pytest

from agent.config import ConfigError, Settings
from agent.providers import OfflineModel, configured_model
from agent.turn import TOOLS

HELLO = [{"role": "user", "content": "hello there"}]


def test_the_answer_reaches_on_text_in_pieces_that_make_the_whole():
    pieces: list[str] = []
    response = OfflineModel().complete(system="", messages=HELLO, tools=TOOLS, deadline=time.monotonic() + 10,
                                       on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == response.content[0]["text"]
    assert response.truncated is False and response.stop_reason == "end_turn"


def test_a_deadline_cuts_a_paced_answer_where_it_got_to():
    # Given the offline model at 20 tokens a second, and a deadline 0.2 s away: the answer needs seconds
    pieces: list[str] = []
    response = OfflineModel(tokens_per_second=20).complete(system="", messages=HELLO, tools=TOOLS,
                                                           deadline=time.monotonic() + 0.2, on_text=pieces.append)
    # Then the reply is what was written, marked truncated
    assert response.truncated is True and response.stop_reason == "deadline"
    assert response.content == [{"type": "text", "text": "".join(pieces)}]
    assert len("".join(pieces)) < len(OfflineModel().complete(system="", messages=HELLO, tools=TOOLS,
                                                              deadline=time.monotonic() + 10).content[0]["text"])


def test_a_tool_call_comes_through_the_stream_whole():
    response = OfflineModel().complete(system="", messages=[{"role": "user", "content": "remember my dog is Rex"}],
                                       tools=TOOLS, deadline=time.monotonic() + 10)
    assert response.stop_reason == "tool_use"
    assert [(b["name"], b["input"]) for b in response.content] == [("remember", {"key": "dog", "value": "Rex"})]


@pytest.mark.parametrize("earlier, said", [(0, "0 earlier turns"), (1, "1 earlier turn"), (2, "2 earlier turns")])
def test_counts_agree_with_their_nouns(earlier, said):
    history = [message for n in range(earlier) for message in (
        {"role": "user", "content": f"message {n}"}, {"role": "assistant", "content": [{"type": "text", "text": "ok"}]})]
    response = OfflineModel().complete(system="", messages=history + HELLO, tools=TOOLS, deadline=time.monotonic() + 10)
    assert f"I see {said} and 0 facts;" in response.content[0]["text"]


def test_the_pace_is_configured_by_the_environment():
    env = {"SESSIONS_TABLE_NAME": "s", "LONG_TERM_TABLE_NAME": "l"}
    assert Settings.from_env(env).offline_tokens_per_second == 0
    assert Settings.from_env(env | {"OFFLINE_MODEL_TOKENS_PER_SECOND": "40"}).offline_tokens_per_second == 40
    assert configured_model(Settings.from_env(env | {"OFFLINE_MODEL_TOKENS_PER_SECOND": "40"}))._pause == 1 / 40
    for bad in ("fast", "-1", "nan", "inf"):
        with pytest.raises(ConfigError):
            Settings.from_env(env | {"OFFLINE_MODEL_TOKENS_PER_SECOND": bad})
