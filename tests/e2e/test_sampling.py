"""Logprobs, n > 1, seeds and logit_bias on the real model."""

import math

import pytest
import requests

from conftest import MODEL_ID

ASK = [{"role": "user", "content": "Name three colours of the rainbow."}]


def tokenize(server, text: str) -> list[int]:
    r = requests.post(server.base + "/tokenize", json={"content": text})
    r.raise_for_status()
    return r.json()["tokens"]


def test_logprobs_top1_is_the_greedy_token(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=24,
                                       logprobs=True, top_logprobs=5)
    choice = r.choices[0]
    content = choice.logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == choice.message.content
    for t in content:
        assert len(t.top_logprobs) == 5
        assert t.top_logprobs[0].token == t.token
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob, abs=1e-5)
        assert t.logprob <= 0
        assert bytes(t.bytes) == t.token.encode()
        # Real log-probabilities of one distribution: sorted, and together at most 1.
        lps = [c.logprob for c in t.top_logprobs]
        assert lps == sorted(lps, reverse=True)
        assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-4
        assert len({c.token for c in t.top_logprobs}) == 5


def test_logprobs_stream_agrees_with_non_stream(client):
    kw = dict(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=24, logprobs=True, top_logprobs=3)
    whole = client.chat.completions.create(**kw).choices[0].logprobs.content
    streamed = []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for c in chunk.choices:
            if c.logprobs and c.logprobs.content:
                streamed += c.logprobs.content
    assert [t.token for t in streamed] == [t.token for t in whole]
    for a, b in zip(streamed, whole):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert [x.token for x in a.top_logprobs] == [x.token for x in b.top_logprobs]


def test_logprobs_without_top_and_range(client, server):
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=8, logprobs=True)
    assert all(t.top_logprobs == [] for t in r.choices[0].logprobs.content)
    assert r.choices[0].logprobs.content
    plain = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=8)
    assert plain.choices[0].logprobs is None
    bad = requests.post(server.base + "/v1/chat/completions", json={
        "model": MODEL_ID, "messages": ASK, "logprobs": True, "top_logprobs": 21})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "top_logprobs"


def test_legacy_completions_integer_logprobs(client):
    r = client.completions.create(model=MODEL_ID, prompt="The capital of France is", temperature=0,
                                  max_tokens=8, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert len(lp.tokens) == r.usage.completion_tokens
    assert "".join(lp.tokens) == r.choices[0].text
    # Offsets run through the text, starting after the prompt as OpenAI counts them.
    assert lp.text_offset[0] == len("The capital of France is")
    for i in range(1, len(lp.tokens)):
        assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3
        best = max(top, key=top.get)
        assert best == token and top[best] == pytest.approx(logprob, abs=1e-5)
        assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-4


def test_n3_greedy_choices_are_identical_and_prompt_counted_once(client):
    one = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=20)
    three = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=20, n=3,
                                           logprobs=True)
    assert [c.index for c in three.choices] == [0, 1, 2]
    texts = {c.message.content for c in three.choices}
    assert texts == {one.choices[0].message.content}
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == sum(len(c.logprobs.content) for c in three.choices)
    assert three.usage.total_tokens == three.usage.prompt_tokens + three.usage.completion_tokens


def test_n3_seeded_sampling_is_reproducible_and_choices_differ(client):
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "Write a short story opening."}],
              temperature=1.0, max_tokens=24, n=3, seed=1234)
    a = [c.message.content for c in client.chat.completions.create(**kw).choices]
    b = [c.message.content for c in client.chat.completions.create(**kw).choices]
    assert a == b
    assert len(set(a)) > 1, a
    other = [c.message.content for c in client.chat.completions.create(**{**kw, "seed": 4321}).choices]
    assert other != a


def test_more_choices_than_slots(client):
    """n=8 on the 4-slot server: two groups of four, each prefilled once, the prompt counted once."""
    one = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=12)
    eight = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=12, n=8)
    assert [c.index for c in eight.choices] == list(range(8))
    assert {c.message.content for c in eight.choices} == {one.choices[0].message.content}
    assert eight.usage.prompt_tokens == one.usage.prompt_tokens
    assert eight.usage.completion_tokens == 8 * one.usage.completion_tokens
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "Write a short story opening."}],
              temperature=1.0, max_tokens=16, n=8, seed=99)
    a = [c.message.content for c in client.chat.completions.create(**kw).choices]
    b = [c.message.content for c in client.chat.completions.create(**kw).choices]
    assert a == b
    # The second group has its own seed: its choices are not the first group's again.
    assert a[4:] != a[:4] and len(set(a)) > 4, a


def test_n3_stream_gives_each_choice_its_role_and_finish(client):
    stream = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=12, n=3,
                                            stream=True, stream_options={"include_usage": True})
    roles, finishes, texts, usage = {}, {}, {0: "", 1: "", 2: ""}, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            if c.delta.role:
                roles[c.index] = roles.get(c.index, 0) + 1
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
            texts[c.index] += c.delta.content or ""
    assert roles == {0: 1, 1: 1, 2: 1}
    assert set(finishes) == {0, 1, 2}
    assert len(set(texts.values())) == 1 and texts[0]
    one = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=12)
    assert usage.prompt_tokens == one.usage.prompt_tokens
    assert usage.completion_tokens == 3 * one.usage.completion_tokens


def test_logit_bias_minus_100_bans_a_token(client, server):
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "What is the capital of France?"}],
              temperature=0, max_tokens=16, logprobs=True)
    plain = client.chat.completions.create(**kw).choices[0]
    emitted = [t.token for t in plain.logprobs.content]
    # Ban the first emitted token that is a single vocabulary entry.
    banned_text = next(t for t in emitted if len(tokenize(server, t)) == 1 and t.strip())
    banned = tokenize(server, banned_text)[0]
    biased = client.chat.completions.create(**kw, logit_bias={str(banned): -100}).choices[0]
    assert banned_text not in [t.token for t in biased.logprobs.content]
    assert biased.message.content != plain.message.content


def test_logit_bias_plus_100_forces_a_token(client, server):
    forced = tokenize(server, " banana")
    assert len(forced) == 1
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=5,
                                       logit_bias={str(forced[0]): 100})
    assert r.choices[0].message.content == " banana" * 5 or r.choices[0].message.content == "banana" + " banana" * 4


def test_logit_bias_out_of_range_is_refused(server):
    for bias in ({"1": 101}, {"99999999": 5}, {"abc": 5}):
        r = requests.post(server.base + "/v1/chat/completions", json={
            "model": MODEL_ID, "messages": ASK, "logit_bias": bias})
        assert r.status_code == 400, (bias, r.text)
        assert r.json()["error"]["param"] == "logit_bias"
