"""Anthropic's Messages API on the real model, through the official `anthropic` SDK:
`messages.create`, `messages.stream` with its helpers, stop sequences, a tool_use → tool_result
round trip, `count_tokens`, thinking blocks, Anthropic's error envelope and `x-api-key`, and the
raw event order."""

import json

import anthropic
import jsonschema
import pytest
import requests

from conftest import MODEL_ID, Server, named_events
from test_tools import WEATHER

ASK = [{"role": "user", "content": "What is 2+2?"}]
TOOL = {"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER}
NO_CACHE = {"Cache-Control": "no-cache"}
# This SDK release no longer takes sampling arguments (newer Claude models fix them); the API
# still does, as an extra body field.
GREEDY = {"extra_body": {"temperature": 0}}


def claude(server, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base, api_key=kw.pop("api_key", "unused"),
                               max_retries=0, default_headers=NO_CACHE, **kw)


@pytest.fixture(scope="module")
def ac(server):
    return claude(server)


def test_create_answers_like_chat(ac, client):
    m = ac.messages.create(model=MODEL_ID, max_tokens=64, messages=ASK, **GREEDY)
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == MODEL_ID
    [block] = m.content
    assert block.type == "text"
    chat = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=64)
    assert block.text == chat.choices[0].message.content and block.text.strip()
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    # Anthropic counts cached input apart from the rest.
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens == chat.usage.prompt_tokens
    assert m.usage.output_tokens == chat.usage.completion_tokens


def test_system_prompt_and_max_tokens(ac):
    plain = ac.messages.create(model=MODEL_ID, max_tokens=5, messages=ASK, **GREEDY)
    assert plain.stop_reason == "max_tokens" and plain.usage.output_tokens == 5
    system = ac.messages.create(model=MODEL_ID, max_tokens=5, messages=ASK, **GREEDY,
                                system=[{"type": "text", "text": "You are a calculator that answers in digits only."}])
    total = lambda m: m.usage.input_tokens + m.usage.cache_read_input_tokens
    assert total(system) != total(plain)


def test_stop_sequence_is_named(ac):
    whole = ac.messages.create(model=MODEL_ID, max_tokens=64, messages=ASK, **GREEDY).content[0].text
    words = whole.split()
    stop = words[len(words) // 2]
    m = ac.messages.create(model=MODEL_ID, max_tokens=64, messages=ASK, **GREEDY,
                           stop_sequences=["zzzq", stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert m.content[0].text == whole[: whole.index(stop)]


def test_stream_helpers_assemble_the_same_message(ac):
    whole = ac.messages.create(model=MODEL_ID, max_tokens=64, messages=ASK, **GREEDY)
    with ac.messages.stream(model=MODEL_ID, max_tokens=64, messages=ASK, **GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def raw_events(server, **body):
    r = requests.post(server.base + "/v1/messages", stream=True, headers=NO_CACHE,
                      json={"model": MODEL_ID, "stream": True, **body}, timeout=60)
    return named_events(r)


def test_raw_stream_event_order(server):
    events = raw_events(server, max_tokens=8, messages=ASK, temperature=0)
    types = [e["type"] for e in events]
    deltas = types.count("content_block_delta")
    assert deltas >= 2
    assert types == (["message_start", "ping", "content_block_start"] + ["content_block_delta"] * deltas
                     + ["content_block_stop", "message_delta", "message_stop"])
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 5
    assert all(e["index"] == 0 for e in events if e["type"].startswith("content_block"))
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"]["output_tokens"] == 8


def test_tool_use_round_trip(ac):
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    first = ac.messages.create(model=MODEL_ID, max_tokens=80, messages=ask, tools=[TOOL],
                               tool_choice={"type": "tool", "name": "get_weather"}, **GREEDY)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and uses[0].id.startswith("toolu_")
    jsonschema.validate(uses[0].input, WEATHER)
    answer = ac.messages.create(
        model=MODEL_ID, max_tokens=24, tools=[TOOL], **GREEDY,
        messages=ask + [{"role": "assistant", "content": first.content},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                                      "content": "21 degrees and sunny"}]}])
    assert answer.content[0].type == "text" and answer.content[0].text.strip()
    total = lambda m: m.usage.input_tokens + m.usage.cache_read_input_tokens
    assert total(answer) > total(first)


def test_tool_use_streams_input_json(ac):
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    with ac.messages.stream(model=MODEL_ID, max_tokens=80, messages=ask, tools=[TOOL],
                            tool_choice={"type": "any"}, **GREEDY) as stream:
        pieces = [e.delta.partial_json for e in stream
                  if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = stream.get_final_message()
    assert len(pieces) >= 2
    [use] = [b for b in final.content if b.type == "tool_use"]
    assert json.loads("".join(pieces)) == use.input
    jsonschema.validate(use.input, WEATHER)
    assert final.stop_reason == "tool_use"


def test_count_tokens_matches_the_prompt(ac):
    counted = ac.messages.count_tokens(model=MODEL_ID, messages=ASK, tools=[TOOL])
    m = ac.messages.create(model=MODEL_ID, max_tokens=4, messages=ASK, tools=[TOOL],
                           tool_choice={"type": "auto"}, **GREEDY)
    assert counted.input_tokens == m.usage.input_tokens + m.usage.cache_read_input_tokens
    bare = ac.messages.count_tokens(model=MODEL_ID, messages=ASK)
    assert bare.input_tokens < counted.input_tokens


def test_errors_use_anthropics_envelope(server, ac):
    r = requests.post(server.base + "/v1/messages", json={"model": MODEL_ID, "messages": ASK})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": "max_tokens: Field required"}}
    with pytest.raises(anthropic.BadRequestError) as e:
        ac.messages.create(model=MODEL_ID, messages=ASK, max_tokens=4,
                           tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "web_search_20250305" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as e:
        ac.messages.create(model="no-such-model", messages=ASK, max_tokens=4)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        ac.messages.create(model=MODEL_ID, max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}]}])


def test_x_api_key_is_accepted(tmp_path):
    s = Server("--api-key", "sekret", tmp=tmp_path)
    try:
        ok = claude(s, api_key="sekret").messages.create(model=MODEL_ID, max_tokens=3, messages=ASK)
        assert ok.usage.output_tokens == 3
        with pytest.raises(anthropic.AuthenticationError) as e:
            claude(s, api_key="wrong").messages.create(model=MODEL_ID, max_tokens=3, messages=ASK)
        assert e.value.body["error"]["type"] == "authentication_error"
    finally:
        s.stop()


def test_thinking_blocks_where_the_template_thinks(thinking):
    c = claude(thinking)
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    m = c.messages.create(model=MODEL_ID, max_tokens=24, messages=ask, **GREEDY,
                          thinking={"type": "enabled", "budget_tokens": 1024})
    assert m.content[0].type == "thinking" and m.content[0].thinking.strip()
    with c.messages.stream(model=MODEL_ID, max_tokens=24, messages=ask, **GREEDY,
                           thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        thought = "".join(e.delta.thinking for e in stream
                          if e.type == "content_block_delta" and e.delta.type == "thinking_delta")
        final = stream.get_final_message()
    assert thought == m.content[0].thinking == final.content[0].thinking
    off = c.messages.create(model=MODEL_ID, max_tokens=24, messages=ask, **GREEDY,
                            thinking={"type": "disabled"})
    assert [b.type for b in off.content] == ["text"]


def test_response_cache_serves_a_repeat(server):
    body = {"model": MODEL_ID, "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": "Name a fruit."}]}
    first = requests.post(server.base + "/v1/messages", json=body)
    again = requests.post(server.base + "/v1/messages", json=body)
    assert (first.headers["x-lantern-cache"], again.headers["x-lantern-cache"]) == ("miss", "hit")
    assert first.json()["content"] == again.json()["content"]
    assert first.json()["id"] != again.json()["id"]
