"""Two real models with different architectures and chat templates in one server: SmolLM2
(llama, its GGUF's own ChatML template) and Gemma 3 270M (gemma3 with sliding-window layers; a
base model without a template, served with config/templates/gemma.jinja)."""

import uuid

import openai
import pytest

from conftest import MODEL, ROOT, Server, concurrently

GEMMA = ROOT / "models" / "gemma-3-270m-Q4_K_M.gguf"
GEMMA_TEMPLATE = ROOT / "config" / "templates" / "gemma.jinja"


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    assert GEMMA.exists(), "fetch the second model first: make model-gemma3"
    tmp = tmp_path_factory.mktemp("two")
    cfg = tmp / "lantern.toml"
    cfg.write_text(f"""
[cache]
enabled = false

[[models]]
id = "smol"
path = "{MODEL}"
parallel = 2
ctx_size = 4096

[[models]]
id = "gemma"
path = "{GEMMA}"
chat_template_file = "{GEMMA_TEMPLATE}"
parallel = 2
ctx_size = 4096
""")
    s = Server("--config", str(cfg), tmp=tmp)
    yield s
    s.stop()


def greedy(model, **kw):
    return dict(model=model, temperature=0, max_tokens=16, **kw)


@pytest.mark.parametrize("model, rendered", ids=["smol", "gemma"], argvalues=[
    # SmolLM2's own template (from its GGUF).
    ("smol", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a fruit.<|im_end|>\n"
             "<|im_start|>assistant\n"),
    # Gemma: no system role, the system text opens the first user turn; BOS comes from the engine.
    ("gemma", "<start_of_turn>user\nBe brief.\n\nName a fruit.<end_of_turn>\n<start_of_turn>model\n"),
])
def test_chat_renders_each_models_own_template(two, model, rendered):
    client = two.client()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}]
    chat = client.chat.completions.create(messages=messages, **greedy(model))
    # The same text sent as a raw completion prompt gives the same tokens and the same answer:
    # the chat endpoint rendered exactly this model's format.
    raw = client.completions.create(prompt=rendered, **greedy(model))
    assert chat.usage.prompt_tokens == raw.usage.prompt_tokens
    assert chat.choices[0].message.content == raw.choices[0].text
    assert chat.model == model


def test_both_models_answer_at_once(two):
    client = two.client()
    models = iter(["smol", "gemma"] * 2)
    results = concurrently(4, lambda: client.chat.completions.create(
        messages=[{"role": "user", "content": "Count to five."}], **greedy(next(models))))
    assert sorted(r.model for r in results) == ["gemma", "gemma", "smol", "smol"]
    assert all(r.usage.completion_tokens > 0 for r in results)


def test_template_exception_is_a_400_naming_messages(two):
    client = two.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            **greedy("gemma"))
    err = e.value.body
    assert err["param"] == "messages"
    assert "alternate user/assistant" in err["message"]


def test_prefix_reuse_on_a_sliding_window_model_keeps_greedy_output(two):
    """Gemma 3's sliding-window layers must not lose KV that a reused prefix needs."""
    client = two.client(default_headers={"Cache-Control": "no-cache"})
    session = uuid.uuid4().hex[:8]
    facts = " ".join(f"Fact {i}: box {session}-{i} holds {i * 7 % 13} marbles." for i in range(60))
    turn1 = [{"role": "user", "content": facts + " Which box holds 3 marbles?"}]
    # Long enough that the sequence runs far past the 512-token sliding window.
    first = client.chat.completions.create(messages=turn1, model="gemma", temperature=0,
                                           max_tokens=200, extra_body={"ignore_eos": True})
    assert first.usage.prompt_tokens + 200 > 1000
    turn2 = turn1 + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And which holds 5?"}]
    warm = client.chat.completions.create(messages=turn2, **greedy("gemma"))
    assert warm.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
    # The same request on a fresh server: nothing cached, same greedy answer.
    fresh = Server("--model", str(GEMMA), "--model-id", "gemma", "--chat-template-file", str(GEMMA_TEMPLATE),
                   "--parallel", "1", "--ctx-size", "4096", tmp=two.log_path.parent)
    try:
        cold = fresh.client().chat.completions.create(messages=turn2, **greedy("gemma"))
    finally:
        fresh.stop()
    assert cold.usage.prompt_tokens_details.cached_tokens == 0
    assert warm.usage.prompt_tokens == cold.usage.prompt_tokens
    assert warm.choices[0].message.content == cold.choices[0].message.content
