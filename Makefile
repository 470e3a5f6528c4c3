# Two entry points on a fresh Linux machine with Python >= 3.10:
#   make demo   set up .venv and run `fvr demo` (writes fvr-demo/)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,metrics,realesrgan]"
	touch $@

demo: setup
	$(BIN)/fvr demo

# pytest exits 5 when it collected no test: that is a failure here, as are all other non-zero codes.
test: setup
	$(BIN)/python -m pytest -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) fvr-demo .pytest_cache
