"""Fail-closed fields on the real server: refused and unknown fields are 400s naming them,
metadata is accepted, and an honoured field is part of the response cache key."""

import pytest
import requests

from conftest import MODEL_ID

BASE = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}


@pytest.mark.parametrize("field,value", [
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("web_search_options", {}),
    ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("function_call", "auto"),
    ("verbosity", "low"),
    ("moderation", True),
    ("no_such_field", 1),
])
def test_refused_or_unknown_field_is_400_naming_it(server, field, value):
    r = requests.post(server.base + "/v1/chat/completions", json={**BASE, field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field


def test_metadata_fields_are_accepted(server):
    metadata = {"user": "u1", "store": False, "metadata": {"k": "v"}, "service_tier": "auto",
                "prompt_cache_key": "abc", "prompt_cache_retention": "24h",
                "prompt_cache_options": {}, "safety_identifier": "s1", "temperature": 0}
    plain = requests.post(server.base + "/v1/chat/completions", json={**BASE, "temperature": 0},
                          headers={"Cache-Control": "no-cache"})
    r = requests.post(server.base + "/v1/chat/completions", json={**BASE, **metadata},
                      headers={"Cache-Control": "no-cache"})
    assert r.status_code == 200, r.text
    # Ignored, so the answer is the one without them.
    assert r.json()["choices"][0]["message"] == plain.json()["choices"][0]["message"]
    # Unknown fields inside a message are metadata too (clients send `name`, ids, ...).
    m = requests.post(server.base + "/v1/chat/completions", json={
        **BASE, "messages": [{"role": "user", "content": "Say hi.", "id": "msg_1", "extra": {}}]})
    assert m.status_code == 200, m.text


@pytest.mark.parametrize("field,value", [
    ("modalities", ["text"]), ("verbosity", "medium"), ("audio", None), ("prediction", None),
])
def test_refused_fields_at_their_default_pass(server, field, value):
    r = requests.post(server.base + "/v1/chat/completions", json={**BASE, field: value})
    assert r.status_code == 200, r.text


def test_requests_differing_in_an_honoured_field_do_not_share_a_cache_entry(server):
    first = requests.post(server.base + "/v1/chat/completions", json={**BASE, "seed": 1})
    again = requests.post(server.base + "/v1/chat/completions", json={**BASE, "seed": 1})
    other = requests.post(server.base + "/v1/chat/completions", json={**BASE, "seed": 2})
    assert again.headers["x-lantern-cache"] == "hit"
    assert other.headers["x-lantern-cache"] == "miss"
    assert first.status_code == other.status_code == 200
