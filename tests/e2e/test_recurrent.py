"""A recurrent model (a tiny random-weight Mamba written with the `gguf` package): llama.cpp
refuses to rewind its state part-way, so a reused slot is prefilled from 0 instead of failing
the next decode with non-consecutive positions."""

import pytest
import requests

from conftest import MODEL, Server
from tiny_mamba import write


@pytest.fixture(scope="module")
def mamba(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mamba")
    path = tmp / "tiny-mamba.gguf"
    write(str(MODEL), str(path))
    s = Server("--model", str(path), "--parallel", "1", "--ctx-size", "2048", tmp=tmp)
    yield s
    s.stop()


def ask(server, text):
    r = requests.post(server.base + "/v1/chat/completions", headers={"Cache-Control": "no-cache"}, json={
        "model": "tiny-mamba", "messages": [{"role": "user", "content": text}], "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_reused_slot_of_a_recurrent_model_serves_every_request(mamba):
    first = ask(mamba, "Hello there, how are you?")
    # Same slot, a prompt sharing a prefix with the cached one, then an exact repeat.
    ask(mamba, "Hello there, how are you doing today?")
    again = ask(mamba, "Hello there, how are you?")
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    # Nothing could be reused: the state was recomputed from the start.
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert "partial KV removal refused; prefilling from 0" in mamba.logs()


def test_a_vocabulary_without_bos_or_eos_loads_and_serves(tmp_path):
    """llama.cpp reports such tokens as -1: token_to_piece(-1) and adding a BOS that does not
    exist both abort the process unless Lantern keeps them from llama.cpp."""
    path = tmp_path / "no-bos.gguf"
    write(str(MODEL), str(path), special_tokens=False)
    s = Server("--model", str(path), "--parallel", "1", "--ctx-size", "2048", tmp=tmp_path)
    try:
        for route, body in [
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
            ("/v1/completions", {"prompt": "hi", "max_tokens": 3}),
            ("/v1/embeddings", {"input": "hi"}),
            ("/tokenize", {"content": "hi", "add_special": True}),
        ]:
            r = requests.post(s.base + route, json={"model": "no-bos", **body})
            assert r.status_code == 200, (route, r.text)
        assert s.proc.poll() is None
    finally:
        s.stop()
