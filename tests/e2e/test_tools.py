"""Tool calling on the real model (SmolLM2's template knows no tools, so the server describes
them in the system prompt and constrains the answer to a call): forced calls validate against
the tool's schema, streamed and not, a call round-trips through the history, `none` gives text."""

import json

import jsonschema

from conftest import MODEL_ID

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 40}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": WEATHER, "strict": True}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
                                      "parameters": TIME, "strict": True}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather like in Paris today?"}]


def check_calls(message, finish_reason, name=None):
    assert finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.id.startswith("call_") and len(call.id) > len("call_")
        assert call.type == "function"
        assert call.function.name in SCHEMAS
        if name:
            assert call.function.name == name
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert len({c.id for c in message.tool_calls}) == len(message.tool_calls)


def test_required_gives_a_valid_call(client):
    for question in ["What is the weather like in Paris today?", "What time is it in Tokyo?",
                     "Tell me a joke about cats."]:
        r = client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": question}], tools=TOOLS,
            tool_choice="required", temperature=0, max_tokens=120)
        check_calls(r.choices[0].message, r.choices[0].finish_reason)


def test_named_choice_calls_that_function(client):
    # The question is about weather; the named choice must still win.
    r = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    check_calls(r.choices[0].message, r.choices[0].finish_reason, name="get_time")
    assert len(r.choices[0].message.tool_calls) == 1


def test_streamed_call_assembled_by_the_sdk_helper(client):
    stream_api = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
    with stream_api(model=MODEL_ID, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120,
                    tool_choice={"type": "function", "function": {"name": "get_weather"}}) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    choice = final.choices[0]
    check_calls(choice.message, choice.finish_reason, name="get_weather")
    call = choice.message.tool_calls[0]
    # The strict tool's arguments are parsed by the SDK too.
    assert call.function.parsed_arguments == json.loads(call.function.arguments)
    # The arguments arrived in pieces, and the stream agrees with the non-streamed answer.
    deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len(deltas) >= 2
    r = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.choices[0].message.tool_calls[0].function.arguments == call.function.arguments


def test_stream_names_each_call_once(client):
    """OpenAI's shape: the first piece of a call has id, type and name with empty arguments;
    later pieces carry only more arguments (the SDK helper concatenates repeated fields)."""
    stream = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
        max_tokens=120, stream=True)
    pieces, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            pieces += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    first = pieces[0]
    assert first.id.startswith("call_") and first.type == "function" and first.function.name in SCHEMAS
    assert first.function.arguments == ""
    for p in pieces[1:]:
        if p.index == first.index:
            assert p.id is None and p.type is None and p.function.name is None
    args = "".join(p.function.arguments or "" for p in pieces if p.index == first.index)
    jsonschema.validate(json.loads(args), SCHEMAS[first.function.name])


def test_none_gives_text(client):
    r = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40)
    choice = r.choices[0]
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content and choice.message.content.strip()


def test_round_trip_call_result_answer(client):
    first = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]

    def answer(result: str):
        history = ASK + [
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": call.id, "type": "function",
                             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        return client.chat.completions.create(
            model=MODEL_ID, messages=history, tools=TOOLS, tool_choice="auto", temperature=0, max_tokens=60)

    short = answer(json.dumps({"temperature": 22, "unit": "celsius", "sky": "sunny"}))
    final = short.choices[0]
    assert final.finish_reason in ("stop", "length")
    assert final.message.tool_calls is None
    assert final.message.content and final.message.content.strip()
    # The call and its result reached the prompt: a longer result makes a longer prompt.
    assert short.usage.prompt_tokens > first.usage.prompt_tokens
    longer = answer(json.dumps({"temperature": 22, "unit": "celsius", "sky": "sunny",
                                "wind": "light breeze from the south west", "humidity": "45 percent"}))
    assert longer.usage.prompt_tokens >= short.usage.prompt_tokens + 10


def test_unknown_named_tool_is_refused(server):
    import requests

    r = requests.post(server.base + "/v1/chat/completions", json={
        "model": MODEL_ID, "messages": ASK, "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_stock_price"}}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"].startswith("tool_choice")
