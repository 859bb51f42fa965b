# Fresh machine: `make demo` (install, then the main job) and `make test` (install, then the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed before the package (its range admits it). On Linux, PyPI's wheel is the CUDA
# build; for the CPU build name PyTorch's CPU index: make TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
RUN_DIR ?= runs/demo

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test,plots,digits,tensorboard,native,docs]"
	touch $@

# Trains a small Diagonal BiLSTM on the 8x8 digits bundled with scikit-learn (offline), evaluates
# it on the test split and draws samples; prints the run folder at the end.
demo: install
	rm -rf $(RUN_DIR)
	$(VENV)/bin/pixelrnn train --config digits_demo --out $(RUN_DIR)
	$(VENV)/bin/pixelrnn evaluate $(RUN_DIR) --split test --train --json $(RUN_DIR)/test.json
	$(VENV)/bin/pixelrnn sample $(RUN_DIR) -n 64 --seed 0 --out $(RUN_DIR)/samples.png
	$(VENV)/bin/pixelrnn complete $(RUN_DIR) --dataset digits --index 0 --index 1 --index 2 --keep-rows 4 -k 8 --seed 0 --out $(RUN_DIR)/completions.png
	@echo "run folder: $(RUN_DIR)"

# The tests build the native kernels where a compiler is found (a few seconds, cached in torch's
# extension folder) and run both them and the PyTorch paths they replace; without one they warn once
# and test the PyTorch paths (tests/native/test_kernels.py forces that case either way).
test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
