# Fresh machine: `make demo` (install, then the main job) and `make test` (install, then the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On CPU-only machines install the CPU wheel of torch before the package (its range admits it).
TORCH_SPEC ?= torch==2.13.0
RUN_DIR ?= runs/demo

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,plots,digits]"
	touch $@

demo: install
	$(VENV)/bin/pixelrnn presets

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
