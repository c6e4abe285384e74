"""Speculative decoding on the real default model, driven with the openai SDK: greedy output
with speculation on (predictions and prompt lookup) equals output with it off, with stop
strings, max_tokens cuts and end tokens inside drafts, logprobs and JSON mode; a right prediction reports accepted
tokens and a wrong one rejected tokens with the answer unchanged; speculative and plain
requests in flight together each get what they get alone; metrics count drafts.

Both servers always get the same requests in the same order: a slot's reused prefix was
computed in a batch of another shape, and llama.cpp's CPU kernels round differently by batch
shape, so even without speculation an answer can depend on what the slot served before.
Prompts stay short for the same reason (past 512 KV cells a lone token takes another
attention kernel; see the speculative decoding section of docs/benchmarks.md)."""

import threading

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import MODEL_ID, Server

NO_CACHE = {"cache-control": "no-cache"}
LIST = "apples, pears, plums, cherries, grapes, lemons, limes, melons, peaches"
PARAGRAPH = ("The lighthouse was built in 1870 on a ledge above the sea. Its lens has a "
             "thousand prisms and was turned by clockwork that the keepers wound every two hours.")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spec")
    off = Server("--parallel", "4", "--speculative", "off", tmp=tmp)
    on = Server("--parallel", "4", "--speculative", "auto", tmp=tmp)
    yield off, on
    off.stop()
    on.stop()


def chat(server, content, prediction=None, **kw):
    extra = {"prediction": {"type": "content", "content": prediction}} if prediction is not None else {}
    return server.client().chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": content}], temperature=0,
        extra_headers=NO_CACHE, **extra, **{"max_tokens": 120, **kw})


def answer(r):
    return r.choices[0].message.content, r.choices[0].finish_reason


# (prompt, prediction: None, "self" (the answer without speculation) or a text, extra arguments)
CASES = [
    ("What is the capital of France?", None, {}),
    ("What is the capital of France?", "self", {}),
    (f"Repeat this list twice: {LIST}", None, {}),
    (f"Repeat this list twice: {LIST}", "self", {}),
    (f"Copy this passage word for word: {PARAGRAPH}", None, {}),
    (f"Copy this passage word for word: {PARAGRAPH}", "self", {"stop": ["clockwork"]}),
    # The answer ends (end token) where the prediction goes on.
    ("Say hello.", "self+", {}),
    # max_tokens cuts the answer in the middle of a long right draft.
    (f"Repeat this list twice: {LIST}", "self", {"max_tokens": 13}),
    ("Write a haiku about the sea.", PARAGRAPH, {}),
    ("Count from one to twenty in words, separated by commas.", "self", {"stop": ["ten"]}),
]


def test_greedy_output_is_the_same_with_speculation_on(servers):
    off, on = servers
    for prompt, prediction, kw in CASES:
        # The unabridged answer, so a stop string or max_tokens falls inside the drafts; the
        # speculative server answers it by prompt lookup alone.
        full = chat(off, prompt)
        assert answer(chat(on, prompt)) == answer(full), prompt
        if prediction in ("self", "self+"):
            more = " And then some more text follows here." if prediction == "self+" else ""
            prediction = full.choices[0].message.content + more
        want = chat(off, prompt, **kw)
        got = chat(on, prompt, prediction, **kw)
        assert answer(got) == answer(want), (prompt, kw)
        assert got.usage.completion_tokens == want.usage.completion_tokens


def test_logprobs_and_json_mode_behave_as_without_drafts(servers):
    off, on = servers
    prompt = f"Repeat this list twice: {LIST}"
    kw = {"logprobs": True, "top_logprobs": 2, "max_tokens": 40}
    want = chat(off, prompt, **kw)
    got = chat(on, prompt, want.choices[0].message.content, **kw)
    w, g = want.choices[0].logprobs.content, got.choices[0].logprobs.content
    assert [t.token for t in g] == [t.token for t in w]
    # Computed in batches of other shapes: equal up to float rounding.
    assert all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(g, w))
    assert [[x.token for x in t.top_logprobs] for t in g] == [[x.token for x in t.top_logprobs] for t in w]
    prompt = 'Give a JSON object with a key "fruits" listing: ' + LIST
    kw = {"response_format": {"type": "json_object"}, "max_tokens": 80}
    want = chat(off, prompt, **kw)
    got = chat(on, prompt, want.choices[0].message.content, **kw)
    assert answer(got) == answer(want)
    assert got.usage.completion_tokens_details.accepted_prediction_tokens > 10


def test_a_right_prediction_reports_accepted_tokens(servers):
    off, on = servers
    prompt = f"Repeat this list twice: {LIST}"
    want = chat(off, prompt)
    got = chat(on, prompt, want.choices[0].message.content)
    assert got.choices[0].message.content == want.choices[0].message.content
    details = got.usage.completion_tokens_details
    assert details.accepted_prediction_tokens >= got.usage.completion_tokens * 0.8, details
    assert details.rejected_prediction_tokens <= got.usage.completion_tokens * 0.2, details


def test_a_wrong_prediction_reports_rejected_tokens_and_changes_nothing(servers):
    off, on = servers
    prompt = "Write a haiku about the sea."
    want = chat(off, prompt)
    got = chat(on, prompt, PARAGRAPH)
    assert got.choices[0].message.content == want.choices[0].message.content
    details = got.usage.completion_tokens_details
    assert details.rejected_prediction_tokens >= 20, details
    assert details.accepted_prediction_tokens <= 3, details
    # Without a prediction both are 0, as OpenAI reports them.
    chat(off, prompt)
    plain = chat(on, prompt).usage.completion_tokens_details
    assert (plain.accepted_prediction_tokens, plain.rejected_prediction_tokens) == (0, 0)


def test_speculative_and_plain_requests_together_each_get_what_they_get_alone(tmp_path):
    # Fresh servers: every prompt is prefilled from the start in an empty slot on both.
    off = Server("--parallel", "4", "--speculative", "off", tmp=tmp_path)
    on = Server("--parallel", "4", "--speculative", "auto", tmp=tmp_path)
    try:
        # Every prompt under 64 tokens with the template: longer ones are prefilled in pieces
        # when batched with others (equal tokens per sequence per micro-batch), and llama.cpp
        # computes attention for 64 or more prompt tokens with another kernel.
        prompts = [f"Repeat this list twice: {LIST}",
                   "Copy this word for word: The lighthouse was built in 1870 on a ledge.",
                   "What is the capital of France?", "Name three colours."]
        alone = [answer(chat(off, p)) for p in prompts]
        results = [None] * len(prompts)

        def run(i):
            # The first two carry their expected answer as the prediction.
            prediction = alone[i][0] if i < 2 else None
            results[i] = answer(chat(on, prompts[i], prediction))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == alone
    finally:
        off.stop()
        on.stop()


def test_a_streamed_answer_with_a_prediction_is_the_same_and_reports_usage(servers):
    off, on = servers
    prompt = f"Repeat this list twice: {LIST}"
    want = chat(off, prompt).choices[0].message.content
    chat(off, prompt)
    chat(on, prompt)
    stream = on.client().chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=120,
        stream=True, stream_options={"include_usage": True}, extra_headers=NO_CACHE,
        prediction={"type": "content", "content": [{"type": "text", "text": want[:20]},
                                                   {"type": "text", "text": want[20:]}]})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want
    assert chunks[-1].usage.completion_tokens_details.accepted_prediction_tokens > 10


def test_completions_take_a_prediction_too(servers):
    off, on = servers
    prompt = f"The fruits are: {LIST}. Again, the fruits are:"
    args = {"model": MODEL_ID, "prompt": prompt, "temperature": 0, "max_tokens": 40,
            "extra_headers": NO_CACHE}
    want = off.client().completions.create(**args).choices[0].text
    got = on.client().completions.create(**args, extra_body={
        "prediction": {"type": "content", "content": want}})
    assert got.choices[0].text == want
    assert got.usage.completion_tokens_details.accepted_prediction_tokens > 10


def test_bad_predictions_are_400s_naming_the_field(servers):
    _, on = servers
    for prediction, param in [({"type": "file", "content": "x"}, "prediction.type"),
                              ({"type": "content", "content": [{"type": "image", "text": "x"}]},
                               "prediction.content[0].type"),
                              # Longer than any answer can be (2048 tokens per sequence).
                              ({"type": "content", "content": "word " * 3000}, "prediction")]:
        with pytest.raises(openai.BadRequestError) as e:
            on.client().chat.completions.create(
                model=MODEL_ID, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                extra_body={"prediction": prediction})
        assert e.value.body["param"] == param, e.value.body


def test_metrics_count_drafted_and_accepted_tokens(servers):
    _, on = servers
    chat(on, f"Repeat this list twice: {LIST}", LIST + ", " + LIST)
    text = requests.get(on.base + "/metrics", timeout=10).text
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("lantern_spec_") and s.labels.get("model") == MODEL_ID:
                values[s.name] = s.value
    drafted = values["lantern_spec_draft_tokens_total"]
    accepted = values["lantern_spec_accepted_tokens_total"]
    assert drafted > 0 and 0 < accepted <= drafted, values
