"""`lantern quantize` on the default model (already Q4_1, so requantized): q8_0 and q4_0 outputs
load and answer, and mistakes (unknown type, existing output, a quantized input without
--allow-requantize, an unreadable input) are one-line errors."""

import subprocess

import pytest

from conftest import BINARY, MODEL, Server


def quantize(*args):
    return subprocess.run([str(BINARY), "quantize", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quant")
    files = {}
    for kind in ("q8_0", "q4_0"):
        out = tmp / f"smollm2-{kind}.gguf"
        r = quantize(MODEL, out, "--type", kind, "--allow-requantize", "--threads", "2")
        assert r.returncode == 0, r.stderr
        assert kind in r.stdout and "MiB" in r.stdout, r.stdout
        files[kind] = out
    return tmp, files


def test_quantized_models_load_and_answer(outputs):
    tmp, files = outputs
    assert files["q4_0"].stat().st_size < files["q8_0"].stat().st_size
    # Q8_0 holds more bits per weight than the Q4_1 input.
    assert files["q8_0"].stat().st_size > MODEL.stat().st_size
    for kind, path in files.items():
        s = Server("--model", str(path), "--parallel", "1", tmp=tmp)
        try:
            model = s.client().models.list().data[0].id
            r = s.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "What is 2+2?"}],
                temperature=0, max_tokens=12)
            assert r.choices[0].message.content.strip(), kind
            assert r.usage.completion_tokens > 0
        finally:
            s.stop()


def one_line_error(r):
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_mistakes_are_one_line_errors(outputs, tmp_path):
    _, files = outputs
    line = one_line_error(quantize(MODEL, tmp_path / "x.gguf", "--type", "q9_9"))
    assert "q9_9" in line and "q8_0" in line and "iq4_nl" in line
    line = one_line_error(quantize(MODEL, files["q8_0"], "--type", "q8_0", "--allow-requantize"))
    assert "--force" in line
    line = one_line_error(quantize(MODEL, tmp_path / "y.gguf", "--type", "q8_0"))
    assert "--allow-requantize" in line
    assert not (tmp_path / "y.gguf").exists()
    line = one_line_error(quantize(tmp_path / "missing.gguf", tmp_path / "z.gguf", "--type", "q8_0"))
    assert "missing.gguf" in line
    # --force overwrites.
    before = files["q4_0"].stat().st_mtime_ns
    r = quantize(MODEL, files["q4_0"], "--type", "q4_0", "--allow-requantize", "--force")
    assert r.returncode == 0, r.stderr
    assert files["q4_0"].stat().st_mtime_ns > before
