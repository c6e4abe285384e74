"""Chat completions against the real model, through the official SDK and raw HTTP."""

import json

import requests

from conftest import MODEL_ID

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def greedy(client, messages, **kw):
    return client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, **kw)


def test_non_stream_shape(client):
    r = greedy(client, QUESTION, max_tokens=48)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == MODEL_ID
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert "Paris" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10
    assert 0 < r.usage.completion_tokens <= 48
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_chunks_follow_openai_framing(client):
    stream = greedy(client, QUESTION, max_tokens=48, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL_ID for c in chunks)
    # role only in the first chunk
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    # exactly one finish_reason, then a usage-only chunk
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_greedy_stream_equals_non_stream(client):
    messages = [{"role": "user", "content": "Write two sentences about the sea."}]
    full = greedy(client, messages, max_tokens=64)
    stream = greedy(client, messages, max_tokens=64, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == full.choices[0].message.content
    assert len(text) > 20


def test_sdk_stream_helper(client):
    with client.chat.completions.stream(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=200,
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert "".join(deltas) == final.choices[0].message.content
    assert len(deltas) > 1


def test_max_tokens_gives_length_with_exact_count(client):
    for field in ("max_tokens", "max_completion_tokens"):
        r = greedy(client, [{"role": "user", "content": "Write a long essay about the history of Rome."}], **{field: 7})
        assert r.choices[0].finish_reason == "length"
        assert r.usage.completion_tokens == 7


def test_ignore_eos_extension_reaches_max_tokens(client):
    r = greedy(client, [{"role": "user", "content": "Say hi."}], max_tokens=40, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 40


def test_stop_sequence_cuts_before_match(client):
    messages = [{"role": "user", "content": "List three fruits, one per line."}]
    full = greedy(client, messages, max_tokens=60).choices[0].message.content
    # A stop string that spans a token boundary: the end of one delta plus the start of the next.
    deltas = [
        c.choices[0].delta.content
        for c in greedy(client, messages, max_tokens=60, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    i = next(i for i in range(2, len(deltas) - 1) if len(deltas[i]) >= 2 and len(deltas[i + 1]) >= 2)
    stop = deltas[i][-1:] + deltas[i + 1][:2]
    expected = full[: full.index(stop)]
    r = greedy(client, messages, max_tokens=60, stop=[stop, "never-appears-xyz"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == expected
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in greedy(client, messages, max_tokens=60, stop=stop, stream=True)
        if c.choices
    )
    assert streamed == expected


def test_content_parts_and_system_roles(client):
    r = greedy(
        client,
        [
            {"role": "developer", "content": "You answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of"}, {"type": "text", "text": "France?"}]},
        ],
        max_tokens=30,
    )
    assert "Paris" in r.choices[0].message.content


def test_multi_turn_with_assistant_and_tool_roles(client):
    r = greedy(
        client,
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=30,
    )
    assert r.choices[0].message.content


def test_non_ascii_round_trips_unbroken(client):
    # The prompt survives the template and tokenizer byte for byte (echo), and generated text
    # in accented / CJK scripts arrives whole in the stream and equals the non-stream answer.
    prompt = "Le café coûte trois euros. 日本語のテキスト 🙂. Translate to French: The coffee is very hot."
    echo = requests.post(
        f"{client.base_url}completions",
        json={"model": MODEL_ID, "prompt": prompt, "max_tokens": 1, "echo": True, "temperature": 0},
    ).json()
    assert echo["choices"][0]["text"].startswith(prompt)
    for question in ("Write the Japanese word for hello.", "Write the French word for coffee, with its accent."):
        messages = [{"role": "user", "content": question}]
        # Japanese output is cut by max_tokens mid-character here: the dangling bytes must be
        # dropped, not sent as U+FFFD.
        full = greedy(client, messages, max_tokens=60).choices[0].message.content
        deltas = [
            c.choices[0].delta.content
            for c in greedy(client, messages, max_tokens=60, stream=True)
            if c.choices and c.choices[0].delta.content
        ]
        assert "".join(deltas) == full
        assert any(ord(ch) > 127 for ch in full), full
        assert "\ufffd" not in full
        assert all("\ufffd" not in d for d in deltas)


def test_raw_sse_bytes(server):
    r = requests.post(
        server.base + "/v1/chat/completions",
        json={"model": MODEL_ID, "messages": QUESTION, "max_tokens": 4, "temperature": 0, "stream": True,
              "stream_options": {"include_usage": True}},
        stream=True,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    body = r.raw.read().decode()
    events = [e for e in body.split("\n\n") if e and not e.startswith(":")]
    assert body.endswith("data: [DONE]\n\n")
    assert all(e.startswith("data: ") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 4
    assert [p["choices"][0]["finish_reason"] for p in payloads[:-1]].count("length") == 1


def test_include_usage_puts_null_usage_on_every_other_chunk(server):
    with requests.post(server.base + "/v1/chat/completions", stream=True, json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 5,
            "stream": True, "stream_options": {"include_usage": True}}) as r:
        chunks = [json.loads(l[6:]) for l in r.iter_lines() if l.startswith(b"data: {")]
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1]), chunks
    assert chunks[-1]["usage"]["total_tokens"] > 0 and chunks[-1]["choices"] == []
