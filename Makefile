# Lantern: `make serve` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
VENV := .venv
LANTERN := target/release/lantern
HOST ?= 127.0.0.1
PORT ?= 8080
# Extra flags for `lantern serve`, e.g. make serve ARGS="--parallel 8"
ARGS ?=
# Benchmark target: any OpenAI-compatible base URL (…/v1)
URL ?= http://127.0.0.1:8080/v1
BENCH_ARGS ?=

.PHONY: all deps model model-gemma3 build build-vulkan serve test unit e2e bench lint fmt openapi clean

all: build

deps:
	@bash scripts/install-deps.sh

model:
	@bash scripts/fetch-model.sh models

# A second real model (another architecture, no chat template of its own) for the e2e tests.
model-gemma3:
	@bash scripts/fetch-model.sh models gemma3

build: deps
	cargo build --release --workspace

# The GPU code path on any Vulkan device (Mesa's llvmpipe where there is no GPU), for the e2e
# tests; into target/vulkan, beside the CPU-only build.
build-vulkan: deps
	@bash scripts/build-vulkan.sh

serve: model build
	$(LANTERN) serve --host $(HOST) --port $(PORT) $(ARGS)

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	touch $@

# The official Node SDK, for the e2e tests that drive lantern from Node.
NODE_DEPS := tests/node/node_modules/.installed
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund
	touch $@

# The real models let unit tests check what is read from their GGUF headers.
unit: deps model model-gemma3
	cargo test --release --workspace

e2e: model model-gemma3 build build-vulkan $(VENV)/.installed $(NODE_DEPS)
	$(VENV)/bin/python -m pytest tests/e2e -v

test: unit e2e

bench: build
	target/release/lantern bench serve --url $(URL) $(BENCH_ARGS)

openapi: build
	$(LANTERN) openapi > openapi.yaml

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf $(VENV)
