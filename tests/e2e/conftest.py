"""Starts real `lantern` processes on the default model and hands tests an OpenAI client."""

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import json

import openai
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "lantern"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "smollm2-135m-instruct.q4_1"

# ChatML with a thinking switch, as Qwen3's and SmolLM3's templates have. The default template
# does not think; this one opens `<think>` unless `enable_thinking` is false.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)


def concurrently(n: int, call):
    """Runs `call()` n times at once; returns the results in completion-independent order."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        return [f.result() for f in [pool.submit(call) for _ in range(n)]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, tmp: Path, env: dict | None = None, binary: Path = BINARY):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"lantern-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--port", str(self.port), "--threads", "2", *args],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "info,lantern_engine=debug,llama-cpp-2=warn", **(env or {})},
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lantern exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if requests.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"lantern not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key="unused", max_retries=0, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    assert BINARY.exists(), "build first: make build"
    assert MODEL.exists(), "fetch the model first: make model"
    s = Server(tmp=tmp_path_factory.mktemp("lantern"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    # Bypass the response cache so every request exercises the engine.
    return server.client(default_headers={"Cache-Control": "no-cache"})


@pytest.fixture(scope="session")
def cached_client(server) -> openai.OpenAI:
    return server.client()


@pytest.fixture
def single_slot_server(tmp_path):
    """A server with one slot, where a leaked slot would block the next request."""
    s = Server("--parallel", "1", "--ctx-size", "4096", tmp=tmp_path)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def thinking(tmp_path_factory):
    """A server whose chat template thinks (THINKING_TEMPLATE)."""
    tmp = tmp_path_factory.mktemp("thinking")
    (tmp / "thinking.jinja").write_text(THINKING_TEMPLATE)
    s = Server("--chat-template-file", str(tmp / "thinking.jinja"), tmp=tmp)
    yield s
    s.stop()


def named_events(response) -> list[dict]:
    """The data of each event of a streamed response whose events are named (`event:` before
    `data:`, as the Responses and Anthropic streams send them), checking each name matches the
    data's `type`. Every data line is JSON: such streams end without `[DONE]`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events, name = [], None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
            assert data["type"] == name
            events.append(data)
    return events
