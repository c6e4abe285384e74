"""Reasoning output on the real model: a configured template that opens `<think>` makes the
answer reasoning, split out of `content`; `reasoning_effort: "none"` and the template's
`enable_thinking` switch turn it off. (The default template does not think.)"""

import pytest
import requests

from conftest import MODEL_ID, THINKING_TEMPLATE, Server

ASK = [{"role": "user", "content": "What is the capital of France?"}]


def chat(server, **body):
    r = requests.post(server.base + "/v1/chat/completions", headers={"Cache-Control": "no-cache"},
                      json={"model": MODEL_ID, "messages": ASK, "temperature": 0, "max_tokens": 24, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_thinking_template_answers_in_reasoning(thinking):
    msg = chat(thinking)["choices"][0]["message"]
    assert msg["reasoning_content"].strip()
    # Both names by default: vLLM's newer `reasoning` too.
    assert msg["reasoning"] == msg["reasoning_content"]
    # The model never closed its thinking, so nothing is content.
    assert not msg.get("content")
    assert "<think>" not in msg["reasoning_content"]


def test_reasoning_streams_as_reasoning_deltas(thinking):
    whole = chat(thinking)["choices"][0]["message"]["reasoning_content"]
    client = thinking.client(default_headers={"Cache-Control": "no-cache"})
    reasoning, content = "", ""
    for chunk in client.chat.completions.create(model=MODEL_ID, messages=ASK, temperature=0, max_tokens=24,
                                                stream=True):
        for c in chunk.choices:
            extra = c.delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            content += c.delta.content or ""
    assert reasoning == whole
    assert content == ""


@pytest.mark.parametrize("switch", [{"reasoning_effort": "none"},
                                    {"chat_template_kwargs": {"enable_thinking": False}}])
def test_thinking_can_be_turned_off(thinking, switch):
    msg = chat(thinking, **switch)["choices"][0]["message"]
    assert msg["content"].strip()
    assert not msg.get("reasoning_content") and not msg.get("reasoning")
    # The off switch changes the prompt (an empty think block), so it is a different request.
    assert chat(thinking, **switch)["usage"]["prompt_tokens"] > chat(thinking)["usage"]["prompt_tokens"]


def test_reasoning_fields_setting_picks_one_name(tmp_path):
    (tmp_path / "thinking.jinja").write_text(THINKING_TEMPLATE)
    (tmp_path / "lantern.toml").write_text(
        f'reasoning_fields = "reasoning_content"\nchat_template_file = "{tmp_path / "thinking.jinja"}"\n')
    s = Server("--config", str(tmp_path / "lantern.toml"), tmp=tmp_path)
    try:
        msg = chat(s)["choices"][0]["message"]
        assert msg["reasoning_content"].strip()
        assert "reasoning" not in msg
    finally:
        s.stop()


def test_non_thinking_template_ignores_reasoning_effort(server):
    plain = chat(server)["choices"][0]["message"]
    off = chat(server, reasoning_effort="none")["choices"][0]["message"]
    assert plain["content"] == off["content"] and plain["content"].strip()
    assert "reasoning_content" not in plain
