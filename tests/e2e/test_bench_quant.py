"""`lantern bench quant` on the default model requantized to two levels, with a short text:
report.md, report.json, report.svg and report.png are written, every column is filled with a
sane value, the reference has zero KL divergence to itself, q4_0 is smaller than q8_0, and the
recommendation names a measured level."""

import json
import subprocess

import pytest

from conftest import BINARY, MODEL

# Any plain text works; Debian ships this one everywhere (base-files).
TEXT = "/usr/share/common-licenses/GPL-3"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-quant")
    r = subprocess.run([str(BINARY), "bench", "quant", "--model", str(MODEL), "--types", "q8_0,q4_0",
                        "--allow-requantize", "--text", TEXT, "--ctx", "256", "--chunks", "3",
                        "--threads", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    # Only progress and results on the terminal, not llama.cpp's tensor listings.
    assert "llama_model_loader" not in r.stderr and "sched_reserve" not in r.stderr, r.stderr[-2000:]
    return out


def test_every_file_is_written(report):
    for name in ("report.md", "report.json", "report.svg"):
        assert (report / name).stat().st_size > 200, name
    assert (report / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (report / "report.svg").read_text()


def test_every_column_is_filled_with_sane_values(report):
    levels = {l["name"]: l for l in json.loads((report / "report.json").read_text())["levels"]}
    assert set(levels) == {"SmolLM2-135M-Instruct.Q4_1 (input)", "q8_0", "q4_0"}
    for name, l in levels.items():
        assert 1 < l["perplexity"] < 1000, name
        assert 0 < l["load_s"] < 120 and l["peak_rss_bytes"] > l["size_bytes"] / 2, name
        for key in ("prompt_tok_s_1", "prompt_tok_s_8", "decode_tok_s_1", "decode_tok_s_8"):
            assert l[key] > 1, (name, key)
        assert 0 <= l["top1"] <= 1 and l["kld"] >= 0
    ref = levels["q8_0"]
    assert ref["reference"] and ref["kld"] == 0 and ref["top1"] == 1
    assert levels["q4_0"]["size_bytes"] < ref["size_bytes"]
    # Quantizing further loses something measurable.
    assert levels["q4_0"]["kld"] > 0 and levels["q4_0"]["top1"] < 1
    md = (report / "report.md").read_text()
    assert md.count("\n| ") == 4, md  # the header and three levels
    assert "**Recommendation.**" in md and any(f"**{n}**" in md for n in levels)
