"""`source = "hf:..."` models, downloaded through hf-hub from a local stand-in for the Hub
(HF_ENDPOINT), with HF_TOKEN required; no internet is involved."""

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import MODEL, Server, free_port

TOKEN = "test-token-123"
REPO = "lantern-test/smollm2"
FILE = "gguf/SmolLM2-Hub.Q4_1.gguf"


class FakeHub(BaseHTTPRequestHandler):
    """GET /{repo}/resolve/{rev}/{file}, with Range support and the Hub's metadata headers."""

    data = MODEL.read_bytes()
    etag = hashlib.sha256(data).hexdigest()
    requests_seen = []
    # Send a little of each download, then hang (a dead connection).
    stall = False

    def log_message(self, *args):
        pass

    def do_GET(self):
        FakeHub.requests_seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        if self.path != f"/{REPO}/resolve/main/{FILE}":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = len(self.data)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if rng:
            a, b = rng.removeprefix("bytes=").split("-")
            start, end = int(a), min(int(b) if b else size - 1, size - 1)
        body = self.data[start:end + 1]
        self.send_response(206 if rng else 200)
        self.send_header("ETag", f'"{self.etag}"')
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if FakeHub.stall and len(body) > 1:
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(8)
            return
        self.wfile.write(body)


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hub_source_downloads_with_progress_then_serves_from_the_cache(hub, tmp_path):
    cache = tmp_path / "cache"
    cfg = tmp_path / "lantern.toml"
    cfg.write_text(f'model_cache_dir = "{cache}"\n[cache]\nenabled = false\n'
                   f'[[models]]\nid = "hub-model"\nsource = "hf:{REPO}/{FILE}"\nparallel = 1\nctx_size = 1024\n')
    env = {"HF_ENDPOINT": hub, "HF_TOKEN": TOKEN}
    s = Server("--config", str(cfg), tmp=tmp_path, env=env)
    try:
        r = requests.post(s.base + "/v1/completions", json={
            "model": "hub-model", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200
        assert "Paris" in r.json()["choices"][0]["text"]
        logs = s.logs()
        assert "downloading model: 0%" in logs and "downloading model: 100%" in logs
    finally:
        s.stop()
    files = [p for p in cache.rglob("*.gguf")]
    assert files and files[0].stat().st_size == len(FakeHub.data)
    assert all(auth == f"Bearer {TOKEN}" for _, auth in FakeHub.requests_seen)

    # Second start: the Hub is not needed; the cached file is used.
    FakeHub.requests_seen.clear()
    s = Server("--config", str(cfg), tmp=tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": TOKEN})
    try:
        assert "found in the download cache" in s.logs()
        r = requests.post(s.base + "/v1/chat/completions", json={
            "model": "hub-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert r.status_code == 200
    finally:
        s.stop()
    assert FakeHub.requests_seen == []


def test_hub_download_failure_is_one_clear_line(hub, tmp_path):
    cfg = tmp_path / "lantern.toml"
    cfg.write_text(f'model_cache_dir = "{tmp_path / "cache"}"\n'
                   f'[[models]]\nsource = "hf:{REPO}/missing.gguf"\n')
    import subprocess
    from conftest import BINARY
    r = subprocess.run([str(BINARY), "serve", "--port", "0", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "HF_ENDPOINT": hub, "HF_TOKEN": TOKEN})
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: downloading hf:{REPO}/missing.gguf failed"), last


def test_hub_model_counts_against_max_memory_bytes_once_downloaded(hub, tmp_path):
    """Before the download there is no header to size the model from; once loaded, its real
    size counts and the idle local model makes room (each is about 300 MB; the limit 500 MB)."""
    cfg = tmp_path / "lantern.toml"
    cfg.write_text(f'model_cache_dir = "{tmp_path / "cache"}"\nmax_memory_bytes = 500000000\n'
                   f'[cache]\nenabled = false\n'
                   f'[[models]]\nid = "local"\npath = "{MODEL}"\nparallel = 1\nctx_size = 4096\n'
                   f'[[models]]\nid = "hub-model"\nsource = "hf:{REPO}/{FILE}"\nload = "lazy"\n'
                   f'parallel = 1\nctx_size = 4096\n')
    s = Server("--config", str(cfg), tmp=tmp_path, env={"HF_ENDPOINT": hub, "HF_TOKEN": TOKEN})
    try:
        r = requests.post(s.base + "/v1/completions", json={
            "model": "hub-model", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200
        got = {m["id"]: m["status"] for m in requests.get(s.base + "/v1/models").json()["data"]}
        assert got == {"local": "unloaded", "hub-model": "loaded"}, got
        assert "evicted least recently used model" in s.logs()
    finally:
        s.stop()


def test_stalled_download_fails_and_the_next_request_retries(hub, tmp_path):
    cfg = tmp_path / "lantern.toml"
    cfg.write_text(f'model_cache_dir = "{tmp_path / "cache"}"\ndownload_stall_secs = 1\n'
                   f'[[models]]\nid = "hubbed"\nsource = "hf:{REPO}/{FILE}"\nload = "lazy"\n')
    FakeHub.stall = True
    try:
        s = Server("--config", str(cfg), tmp=tmp_path, env={"HF_ENDPOINT": hub, "HF_TOKEN": TOKEN})
        body = {"model": "hubbed", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        start = time.time()
        r = requests.post(s.base + "/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 503, r.text
        assert "nothing received for 1s" in r.json()["error"]["message"]
        assert time.time() - start < 8, "the stall check, not the server's own sleep, ended it"
        FakeHub.stall = False
        r = requests.post(s.base + "/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
    finally:
        FakeHub.stall = False
        s.stop()
