# Set up a local virtual environment and run things in it.
# torch goes in first, pinned, so that pip takes the CPU wheel rather than a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
READY = $(VENV)/.ready

.PHONY: demo test clean

$(READY): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(READY)

demo: $(READY)
	$(BIN)/nteach compare --out runs/demo --overwrite

test: $(READY)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
