"""Start-up failures: one clear line on stderr and a non-zero exit, never a panic trace."""

import subprocess

import pytest

from conftest import BINARY, MODEL


def serve(*args, cwd, timeout=60):
    return subprocess.run([str(BINARY), "serve", "--port", "0", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def last_line(r):
    return r.stderr.strip().splitlines()[-1]


def test_missing_default_model_says_make_model(tmp_path):
    r = serve(cwd=tmp_path)
    assert r.returncode == 1
    assert "make model" in last_line(r)
    assert "panicked" not in r.stderr


def test_missing_model_file(tmp_path):
    r = serve("--model", str(tmp_path / "nope.gguf"), cwd=tmp_path)
    assert r.returncode == 1
    assert last_line(r) == f"error: model file {tmp_path / 'nope.gguf'} not found"


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    r = serve("--model", str(bad), cwd=tmp_path)
    assert r.returncode == 1
    assert "not a GGUF file" in last_line(r)


def test_truncated_model_fails_cleanly(tmp_path):
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(MODEL.read_bytes()[:3_000_000])
    r = serve("--model", str(trunc), cwd=tmp_path)
    assert r.returncode == 1
    assert last_line(r).startswith(f"error: failed to load model {trunc}")
    assert "panicked" not in r.stderr


def test_bad_flags_and_config(tmp_path):
    r = serve("--parallel", "0", cwd=tmp_path)
    assert r.returncode == 1 and "parallel" in last_line(r)
    cfg = tmp_path / "l.toml"
    cfg.write_text("prot = 9000\n")
    r = serve("--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert "prot" in last_line(r) and str(cfg) in last_line(r)
    r = serve("--chat-template-file", "nope.jinja", cwd=tmp_path)
    assert r.returncode == 1
    assert last_line(r).startswith("error: invalid setting chat_template_file: cannot read nope.jinja")
    r = serve("--chat-template", "{% for m in messages %}", cwd=tmp_path)
    assert r.returncode == 1
    assert "invalid Jinja" in last_line(r) and "panicked" not in r.stderr


def test_openapi_subcommand_prints_spec():
    r = subprocess.run([str(BINARY), "openapi"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("openapi: 3.1.0")
    assert "/v1/chat/completions" in r.stdout


def test_gpu_layers_on_a_cpu_only_build(tmp_path):
    r = serve("--model", str(MODEL), "--gpu-layers", "all", cwd=tmp_path)
    assert r.returncode == 1
    assert "gpu_layers" in last_line(r) and "--features vulkan" in last_line(r)
    r = serve("--gpu-layers", "most", cwd=tmp_path)
    assert r.returncode == 2 and "expected a number of layers or `all`" in r.stderr



def test_a_repeated_flag_overrides_the_earlier_one(tmp_path):
    """A container's entrypoint sets --host and --port; `docker run IMAGE --port N` wins."""
    import time

    import requests

    from conftest import free_port

    first, second = free_port(), free_port()
    proc = subprocess.Popen([str(BINARY), "serve", "--model", str(MODEL), "--threads", "2", "--port", str(first),
                             "--api-key", "k1", "--port", str(second), "--api-key", "k2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{second}/health", timeout=1)
                if r.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.2)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{first}/health", timeout=1)
        # Repeatable flags still add up.
        for key in ("k1", "k2"):
            assert requests.get(f"http://127.0.0.1:{second}/v1/models", headers={"x-api-key": key}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
