"""The OpenAI Responses API on the real model, through the official SDK: string and item input,
instructions, the stream helpers, a function call round trip through `function_call_output`,
`text.format` json_schema, `previous_response_id` with cached tokens, retrieve and delete, 404s,
reasoning items, and the raw event order with `sequence_number`."""

import json

import jsonschema
import openai
import pytest
import requests

from conftest import MODEL_ID, named_events
from test_tools import WEATHER

ASK = "What is the capital of France?"
NO_CACHE = {"Cache-Control": "no-cache"}
TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
        "parameters": WEATHER, "strict": True}


def test_string_input_answers_with_one_message(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=24)
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.status in ("completed", "incomplete") and r.created_at > 0
    assert r.model == MODEL_ID
    [msg] = r.output
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.content[0].type == "output_text"
    # The same engine path as chat: the same prompt gives the same greedy answer.
    chat = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": ASK}],
                                          temperature=0, max_tokens=24)
    assert r.output_text == chat.choices[0].message.content and r.output_text.strip()
    assert r.usage.input_tokens == chat.usage.prompt_tokens
    u = r.usage
    assert u.input_tokens > 5 and 0 < u.output_tokens <= 24
    assert u.total_tokens == u.input_tokens + u.output_tokens


def test_max_output_tokens_makes_it_incomplete(client):
    r = client.responses.create(model=MODEL_ID, input="Write a long story about a dragon.",
                                temperature=0, max_output_tokens=5)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 5


def test_instructions_and_item_list_reach_the_prompt(client):
    turns = [{"role": "user", "content": [{"type": "input_text", "text": "Hello."}]},
             {"role": "assistant", "content": "Hello! Ask me anything."},
             {"type": "message", "role": "user", "content": ASK}]
    body = dict(model=MODEL_ID, temperature=0, max_output_tokens=8)
    plain = client.responses.create(input=ASK, **body)
    items = client.responses.create(input=turns, **body)
    # The two earlier turns add their text and markup.
    assert items.usage.input_tokens >= plain.usage.input_tokens + 14
    teacher = "You are a geography teacher who answers every question in exactly one word."
    taught = client.responses.create(instructions=teacher, input=turns, **body)
    assert taught.instructions == teacher
    assert taught.usage.input_tokens != items.usage.input_tokens
    assert taught.output_text.strip()


def test_stream_helper_assembles_the_same_text(client):
    # An answer that ends on its own: the helper's final response needs `response.completed`.
    body = dict(model=MODEL_ID, input="What is 2+2?", temperature=0, max_output_tokens=64)
    whole = client.responses.create(**body)
    assert whole.status == "completed"
    deltas = []
    with client.responses.stream(**body) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == whole.output_text == final.output_text
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.status == whole.status


def raw_events(server, **body):
    r = requests.post(server.base + "/v1/responses", stream=True, headers=NO_CACHE,
                      json={"model": MODEL_ID, "stream": True, **body}, timeout=60)
    return named_events(r)


def test_raw_stream_events_in_order_with_sequence_numbers(server):
    events = raw_events(server, input=ASK, temperature=0, max_output_tokens=16)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    deltas = types.count("response.output_text.delta")
    assert deltas >= 2
    assert types == (["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * deltas
                     + ["response.output_text.done", "response.content_part.done",
                        "response.output_item.done", events[-1]["type"]])
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    created = events[0]["response"]
    assert created["created_at"] > 0 and created["model"] == MODEL_ID
    assert created["status"] == "in_progress" and created["output"] == []
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = events[-1]["response"]
    assert done["id"] == created["id"]
    assert done["output"][0]["content"][0]["text"] == text
    assert events[-4]["text"] == text
    assert done["usage"]["output_tokens"] > 0


def test_function_call_round_trip(client):
    first = client.responses.create(model=MODEL_ID, input="What is the weather like in Paris today?",
                                    tools=[TOOL], tool_choice="required", temperature=0,
                                    max_output_tokens=80)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls, first.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    answer = client.responses.create(
        model=MODEL_ID, tools=[TOOL], temperature=0, max_output_tokens=24,
        input=[{"role": "user", "content": "What is the weather like in Paris today?"}, call,
               {"type": "function_call_output", "call_id": call.call_id,
                "output": json.dumps({"temperature": 21, "sky": "sunny"})}])
    assert answer.output_text.strip()
    assert answer.usage.input_tokens > first.usage.input_tokens


def test_function_call_streams_arguments(server):
    events = raw_events(server, input="What is the weather like in Paris today?", tools=[TOOL],
                        tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
                        max_output_tokens=80)
    types = [e["type"] for e in events]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call" and added["item"]["name"] == "get_weather"
    pieces = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(pieces) >= 2
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == "".join(pieces)
    jsonschema.validate(json.loads(done["arguments"]), WEATHER)
    assert types.index("response.function_call_arguments.done") < types.index("response.output_item.done")
    assert events[-1]["response"]["output"][0]["arguments"] == done["arguments"]


def test_json_schema_format_validates(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 30}},
              "required": ["capital"], "additionalProperties": False}
    r = client.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=40,
                                text={"format": {"type": "json_schema", "name": "answer",
                                                 "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(r.output_text), schema)
    assert r.text.format.type == "json_schema"


def test_previous_response_id_continues_with_cached_tokens(cached_client, client):
    first = client.responses.create(model=MODEL_ID, input="My name is Ada. Remember it.",
                                    temperature=0, max_output_tokens=16)
    second = client.responses.create(model=MODEL_ID, previous_response_id=first.id,
                                     input="What is my name?", temperature=0, max_output_tokens=16)
    assert second.previous_response_id == first.id
    # The first turn (question and answer) is in the prompt, and its KV was reused.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 2
    items = client.responses.input_items.list(second.id, order="asc")
    texts = [i.content[0].text for i in items.data]
    assert texts[0] == "My name is Ada. Remember it." and texts[-1] == "What is my name?"
    assert first.output_text in texts


def test_retrieve_delete_and_404(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=8)
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.status == r.status
    deleted = client.responses.delete(r.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    for call in (lambda: client.responses.retrieve(r.id), lambda: client.responses.delete(r.id),
                 lambda: client.responses.retrieve("resp_unknown"),
                 lambda: client.responses.input_items.list("resp_unknown")):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=MODEL_ID, input="hi", previous_response_id="resp_gone")
    assert e.value.body["param"] == "previous_response_id"


def test_store_false_keeps_nothing(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=8,
                                store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


@pytest.mark.parametrize("body,param", [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"truncation": "auto"}, "truncation"),
    ({"include": ["bogus.value"]}, "include[0]"),
    ({"background": True}, "background"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
     "input[0].content[0].type"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"frequency_penalty": 1}, "frequency_penalty"),
])
def test_refusals_name_the_field(server, body, param):
    r = requests.post(server.base + "/v1/responses", json={"model": MODEL_ID, "input": "hi", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_built_in_tools_are_fine_when_they_cannot_be_called(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, tools=[{"type": "web_search"}],
                                tool_choice="none", temperature=0, max_output_tokens=8)
    assert r.output_text.strip()


def test_logprobs_on_output_text(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=6,
                                include=["message.output_text.logprobs"], top_logprobs=2)
    lp = r.output[0].content[0].logprobs
    assert len(lp) == r.usage.output_tokens
    assert "".join(t.token for t in lp) == r.output_text
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in lp)


def test_thinking_template_gives_a_reasoning_item(thinking):
    c = thinking.client()
    r = c.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=24,
                           reasoning={"summary": "auto"}, include=["reasoning.encrypted_content"])
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    text = reasoning.content[0].text
    assert text.strip()
    assert reasoning.summary[0].text == text and reasoning.encrypted_content
    assert 0 < r.usage.output_tokens_details.reasoning_tokens <= r.usage.output_tokens
    events = raw_events(thinking, input=ASK, temperature=0, max_output_tokens=24)
    streamed = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
    assert streamed == text
    off = c.responses.create(model=MODEL_ID, input=ASK, temperature=0, max_output_tokens=24,
                             reasoning={"effort": "none"})
    assert [o.type for o in off.output] == ["message"]


def test_response_cache_serves_a_repeat(cached_client):
    body = dict(model=MODEL_ID, input="Name a colour.", temperature=0, max_output_tokens=12, store=False)
    first = cached_client.responses.with_raw_response.create(**body)
    again = cached_client.responses.with_raw_response.create(**body)
    assert (first.headers["x-lantern-cache"], again.headers["x-lantern-cache"]) == ("miss", "hit")
    a, b = first.parse(), again.parse()
    assert a.output_text == b.output_text and a.id != b.id


def test_a_streamed_response_is_stored_as_completed(server, client):
    events = raw_events(server, input="What is 2+2?", temperature=0, max_output_tokens=64)
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    got = client.responses.retrieve(final["id"])
    assert got.status == "completed" and got.output_text == final["output"][0]["content"][0]["text"]
    assert [o.id for o in got.output] == [o["id"] for o in final["output"]]
