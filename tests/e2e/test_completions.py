"""Legacy /v1/completions against the real model."""

from conftest import MODEL_ID


def test_completion_non_stream(client):
    r = client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.id.startswith("cmpl-")
    assert r.object == "text_completion"
    assert "Paris" in r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8
    assert r.usage.prompt_tokens == 5


def test_completion_default_max_tokens_is_16(client):
    r = client.completions.create(model=MODEL_ID, prompt="Once upon a time", temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16


def test_completion_stream_equals_non_stream(client):
    kw = dict(model=MODEL_ID, prompt="The three primary colors are", max_tokens=24, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices].count("length") == 1
    assert chunks[-1].usage.completion_tokens == 24


def test_completion_echo_and_token_prompt(client):
    r = client.completions.create(model=MODEL_ID, prompt="Hello there", max_tokens=3, temperature=0, echo=True)
    assert r.choices[0].text.startswith("Hello there")
    by_text = client.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=6, temperature=0)
    # The same prompt as token ids gives the same greedy continuation.
    ids = [504, 3575, 282, 4649, 314]
    by_ids = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=6, temperature=0)
    assert by_ids.usage.prompt_tokens == len(ids)
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_several_prompts_in_one_request(client):
    prompts = ["The capital of France is", "One, two, three,"]
    r = client.completions.create(model=MODEL_ID, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in r.choices] == [0, 1]
    for i, p in enumerate(prompts):
        single = client.completions.create(model=MODEL_ID, prompt=p, max_tokens=6, temperature=0)
        assert r.choices[i].text == single.choices[0].text
    assert r.usage.completion_tokens == 12


def test_seeded_sampling_is_reproducible(client):
    kw = dict(model=MODEL_ID, prompt="My favourite animal is", max_tokens=16, temperature=1.0, top_p=0.95,
              extra_body={"top_k": 40, "min_p": 0.05})
    a = client.completions.create(seed=1234, **kw).choices[0].text
    b = client.completions.create(seed=1234, **kw).choices[0].text
    assert a == b
    others = {client.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3, 4)}
    assert len(others | {a}) > 1, "different seeds should not all agree"


def test_penalties_change_output(client):
    kw = dict(model=MODEL_ID, prompt="Repeat after me: apple apple apple apple", max_tokens=24, temperature=0)
    plain = client.completions.create(**kw).choices[0].text
    penalised = client.completions.create(frequency_penalty=2.0, presence_penalty=2.0, **kw).choices[0].text
    assert plain != penalised
