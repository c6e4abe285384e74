"""GPU offload through a real llama.cpp GPU backend: the `--features vulkan` build
(target/vulkan, `make build-vulkan`) on the machine's first Vulkan device. On a machine without
a GPU that is Mesa's llvmpipe, a Vulkan driver that runs on the CPU: slow, but the weights, KV
cache and compute buffers really are placed on a Vulkan device and every layer runs there.

The slots are limited to one: Mesa 22.3's llvmpipe (Debian 12) crashes, in one of its own
threads, when three sequences share a batch while its shaders are first compiled (3 times out of
3 with an empty shader cache; not seen with a warm one, nor with one sequence)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import MODEL, MODEL_ID, ROOT, Server

# Another GPU build can be tested the same way, e.g. a CUDA one:
# LANTERN_GPU_BINARY=target/release/lantern LANTERN_GPU_DEVICE=CUDA0 pytest tests/e2e/test_gpu.py
GPU_BINARY = Path(os.environ.get("LANTERN_GPU_BINARY", ROOT / "target" / "vulkan" / "release" / "lantern"))
DEVICE = os.environ.get("LANTERN_GPU_DEVICE", "Vulkan0")
# ggml lists only real GPUs unless told which devices to use; 0 is the first, llvmpipe here.
# Mesa compiles every shader afresh, as on a new machine (and writes nothing under ~/.cache).
ENV = {"GGML_VK_VISIBLE_DEVICES": "0", "MESA_SHADER_CACHE_DISABLE": "true", "RUST_LOG": "info,llama-cpp-2=info"}
ONE_SLOT = ("--parallel", "1", "--ctx-size", "2048")
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory):
    assert GPU_BINARY.exists(), "build the Vulkan variant first: make build-vulkan"
    s = Server("--gpu-layers", "all", *ONE_SLOT, tmp=tmp_path_factory.mktemp("gpu"), env=ENV, binary=GPU_BINARY)
    yield s
    s.stop()


def answer(client, messages, **kw):
    r = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, **kw)
    return r.choices[0].message.content


def test_every_layer_and_the_kv_cache_are_on_the_gpu(gpu_server):
    logs = gpu_server.logs()
    assert re.search(rf"offloading layers to the GPU gpu={DEVICE} .*layers=\"?all", logs), logs
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers to GPU", logs)
    assert offloaded and offloaded[1] == offloaded[2], logs
    assert re.search(rf"{DEVICE} model buffer size = +\d", logs), logs
    assert re.search(rf"{DEVICE} KV buffer size = +\d", logs), logs
    assert "no usable GPU" not in logs


def test_gpu_answers_like_the_cpu(gpu_server, client):
    gpu = gpu_server.client(default_headers={"Cache-Control": "no-cache"}, timeout=300)
    # A short factual answer is the same token for token; longer greedy texts may part after a
    # few words, since the GPU kernels round differently from the CPU ones.
    assert answer(gpu, QUESTION, max_tokens=12) == answer(client, QUESTION, max_tokens=12)
    assert "Paris" in answer(gpu, QUESTION, max_tokens=12)
    stream = gpu.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "What is 2 + 2?"}],
                                         temperature=0, max_tokens=12, stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "4" in text, text
    assert chunks[-1].usage.completion_tokens > 0


def test_prefix_reuse_on_the_gpu(gpu_server):
    gpu = gpu_server.client(default_headers={"Cache-Control": "no-cache"}, timeout=300)
    first = gpu.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=8)
    again = gpu.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=8)
    assert again.usage.prompt_tokens_details.cached_tokens > 0
    assert again.choices[0].message.content == first.choices[0].message.content


def test_some_layers_on_the_gpu(tmp_path):
    s = Server("--gpu-layers", "10", *ONE_SLOT, tmp=tmp_path, env=ENV, binary=GPU_BINARY)
    try:
        logs = s.logs()
        assert re.search(r"offloaded 10/\d+ layers to GPU", logs), logs
        # The rest of the weights stay in host memory.
        assert re.search(r"CPU_Mapped model buffer size = +\d", logs), logs
        out = answer(s.client(timeout=300), QUESTION, max_tokens=12)
        assert "Paris" in out, out
    finally:
        s.stop()


def test_replicas_share_the_gpu_copy_of_the_weights(tmp_path):
    cfg = tmp_path / "gpu.toml"
    cfg.write_text(f'''
[[models]]
id = "{MODEL_ID}"
path = "{MODEL}"
replicas = 2
parallel = 1
ctx_size = 2048
gpu_layers = "all"
''')
    s = Server("--config", str(cfg), tmp=tmp_path, env=ENV, binary=GPU_BINARY)
    try:
        logs = s.logs()
        # The weights are loaded onto the device once; each replica has its own KV cache there.
        assert len(re.findall(rf"{DEVICE} model buffer size", logs)) == 1, logs
        assert len(re.findall(rf"{DEVICE} KV buffer size", logs)) == 2, logs
        assert "Paris" in answer(s.client(timeout=300), QUESTION, max_tokens=12)
    finally:
        s.stop()


def test_a_main_gpu_that_does_not_exist_stops_start_up_listing_the_gpus(tmp_path):
    r = subprocess.run([str(GPU_BINARY), "serve", "--port", "0", "--gpu-layers", "all", "--main-gpu", "3"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **ENV})
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "main_gpu = 3" in last and f"0: {DEVICE} (" in last, last
    assert "panicked" not in r.stderr


def test_without_a_visible_gpu_the_layers_run_on_the_cpu(tmp_path):
    # An empty device list: a GPU build on a machine with no usable GPU warns and serves.
    env = {**ENV, "GGML_VK_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}
    s = Server("--gpu-layers", "all", *ONE_SLOT, tmp=tmp_path, env=env, binary=GPU_BINARY)
    try:
        assert "no usable GPU was found" in s.logs()
        assert "Paris" in answer(s.client(), QUESTION, max_tokens=12)
    finally:
        s.stop()
