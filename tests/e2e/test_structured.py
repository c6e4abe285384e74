"""Structured output on the real model: every answer parses, and with a schema validates."""

import json

import jsonschema
import openai
import pytest
import requests
from pydantic import BaseModel

from conftest import MODEL_ID, concurrently

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "role": {"type": "string", "enum": ["admin", "user", "guest"]},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "age", "role", "address", "tags"],
    "additionalProperties": False,
}

TOPICS = ["a cat", "the sea", "Paris", "a bicycle", "winter", "coffee", "a teacher", "the moon", "music",
          "a garden", "trains", "a birthday", "rain", "a library", "football", "bread", "a robot", "mountains",
          "a doctor", "the internet"]


def in_parallel(calls):
    """Runs the callables four at a time (the server's slots) and returns their results in order."""
    results = [None] * len(calls)
    it = iter(enumerate(calls))

    def worker():
        for i, call in it:
            results[i] = call()

    concurrently(4, worker)
    return results


def test_json_object_always_parses(client):
    def ask(topic):
        return lambda: client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": f"Describe {topic} as a JSON object."}],
            temperature=0, max_tokens=300, response_format={"type": "json_object"})

    answers = in_parallel([ask(t) for t in TOPICS])
    for r in answers:
        assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
        assert isinstance(json.loads(r.choices[0].message.content), dict)


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_always_validates(client, stream):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}

    def ask(topic):
        messages = [{"role": "user", "content": f"Invent a person who likes {topic}."}]
        if not stream:
            return lambda: client.chat.completions.create(
                model=MODEL_ID, messages=messages, temperature=0.8, seed=11, max_tokens=200,
                response_format=fmt).choices[0]

        def run():
            chunks = list(client.chat.completions.create(
                model=MODEL_ID, messages=messages, temperature=0.8, seed=11, max_tokens=200,
                response_format=fmt, stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            return text, finish

        return run

    for result in in_parallel([ask(t) for t in TOPICS]):
        if stream:
            text, finish = result
            assert finish == ["stop"]
        else:
            text = result.message.content
            assert result.finish_reason == "stop"
        jsonschema.validate(json.loads(text), PERSON)


def test_sdk_parse_helper_returns_the_object(client):
    # The official SDK's structured-output helper sends a strict json_schema made from a
    # pydantic model and parses the answer into it.
    class Place(BaseModel):
        city: str
        country: str

    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    r = parse(model=MODEL_ID, messages=[{"role": "user", "content": "Where is the Eiffel Tower?"}],
              temperature=0, max_tokens=80, response_format=Place)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(r.choices[0].message.parsed, Place)


def test_unsupported_schema_keyword_is_400_naming_it(server):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "if": {"required": ["a"]}, "then": {}}
    r = requests.post(server.base + "/v1/chat/completions", json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "response_format"
    assert '"if"' in err["message"]


def test_sdk_raises_on_unsupported_schema(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "dependentSchemas": {"a": {}}}}})
