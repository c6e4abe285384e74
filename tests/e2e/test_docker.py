"""The CPU container image, built from docker/Dockerfile (its runtime stage around the host's
release binary) and run: it serves the default model, answers a chat request, and its
HEALTHCHECK turns healthy. Skipped, saying why, where no Docker daemon can run."""

import socket
import subprocess
import time

import pytest
import requests

from conftest import MODEL, MODEL_ID, ROOT


def docker(*args, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    out = subprocess.run(["bash", str(ROOT / "scripts" / "docker-image.sh")], capture_output=True, text=True,
                         timeout=1200)
    if out.returncode == 3:
        pytest.skip(f"no Docker daemon can run here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_container_serves_and_turns_healthy(image):
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 8080)) != 0, "port 8080 is taken; the image listens there"
    name = "lantern-e2e"
    docker("rm", "-f", name)
    run = docker("run", "-d", "--name", name, "--network", "host", "-v", f"{MODEL.parent}:/models:ro", image,
                 "--model", f"/models/{MODEL.name}", "--threads", "2")
    assert run.returncode == 0, run.stderr
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get("http://127.0.0.1:8080/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, docker("logs", name).stderr[-2000:]
            time.sleep(0.5)
        r = requests.post("http://127.0.0.1:8080/v1/chat/completions", json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            "temperature": 0, "max_tokens": 32})
        assert r.status_code == 200, r.text
        assert "Paris" in r.json()["choices"][0]["message"]["content"]
        while docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() != "healthy":
            assert time.time() < deadline + 60, docker("inspect", name).stdout[-2000:]
            time.sleep(1)
        # SIGTERM drains and exits 0.
        stop = docker("stop", "-t", "30", name)
        assert stop.returncode == 0
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        docker("rm", "-f", name)
