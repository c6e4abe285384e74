"""Bad input gets an OpenAI error envelope with the right status, never a crash."""

import openai
import pytest
import requests

from conftest import MODEL_ID

GOOD = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def assert_envelope(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["code"] is None or isinstance(err["code"], str)
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.mark.parametrize(
    "patch,param",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"n": 17}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": "hello"}, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": None}, "model"),
        ({"messages": None}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ],
)
def test_invalid_fields_are_400(server, patch, param):
    # None stands for a missing field.
    body = {k: v for k, v in {**GOOD, **patch}.items() if v is not None}
    r = requests.post(server.base + "/v1/chat/completions", json=body)
    err = assert_envelope(r, 400, param=param)
    assert err["type"] == "invalid_request_error"


def test_invalid_json_is_400(server):
    r = requests.post(server.base + "/v1/chat/completions", data=b'{"model": "x", "messages": [',
                      headers={"content-type": "application/json"})
    assert_envelope(r, 400)


def test_sdk_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "x"}], temperature=5)
    assert e.value.body["param"] == "temperature"


def test_unknown_model_is_404(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"
    assert MODEL_ID in e.value.body["message"]
    r = requests.post(server.base + "/v1/completions", json={"model": "nope", "prompt": "x"})
    assert_envelope(r, 404, code="model_not_found")


def test_wrong_method_is_405(server):
    assert_envelope(requests.get(server.base + "/v1/chat/completions"), 405)
    assert_envelope(requests.delete(server.base + "/v1/models"), 405)


def test_unknown_route_is_404(server):
    assert_envelope(requests.get(server.base + "/v1/nothing-here"), 404)


def test_oversized_body_is_413(server):
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}
    assert_envelope(requests.post(server.base + "/v1/chat/completions", json=big), 413)


def test_prompt_longer_than_context_is_400(server, client):
    long_text = "word " * 3000  # beyond the 2048-token per-sequence context of the default flags
    r = requests.post(server.base + "/v1/chat/completions",
                      json={**GOOD, "messages": [{"role": "user", "content": long_text}]})
    err = assert_envelope(r, 400, param="messages", code="context_length_exceeded")
    assert "2048" in err["message"]
    r = requests.post(server.base + "/v1/completions", json={"model": MODEL_ID, "prompt": long_text})
    assert_envelope(r, 400, param="prompt", code="context_length_exceeded")
    # The server is unharmed.
    ok = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert ok.usage.completion_tokens >= 1


def test_unsupported_content_part_is_400(server):
    body = {**GOOD, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert_envelope(requests.post(server.base + "/v1/chat/completions", json=body), 400, param="messages[0].content")


def test_out_of_vocabulary_token_prompt_is_400(server):
    r = requests.post(server.base + "/v1/completions", json={"model": MODEL_ID, "prompt": [1, 99999999]})
    assert_envelope(r, 400, param="prompt")
