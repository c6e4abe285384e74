"""Start-up failures: one clear line on stderr and a non-zero exit, never a panic trace."""

import subprocess

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
