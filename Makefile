# Two entry points on a fresh Linux machine with Python >= 3.10:
#   make demo   set up .venv and run `fvr demo` (writes fvr-demo/)
#   make test   set up .venv (and .venv-spandrel for the spandrel extra) and run the test suites
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-main lint browser bench clean test-spandrel clean-spandrel

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,metrics,realesrgan,batch,ui,provenance]"
	touch $@

demo: setup
	$(BIN)/fvr demo

# pytest exits 5 when it collected no test: that is a failure here, as are all other non-zero codes.
# `make test` = the main suite in .venv, then the spandrel suite in its own environment (see below).
test: test-main test-spandrel

# lint (ruff) and type check (mypy, configured in pyproject.toml) first: both must be clean
test-main: setup lint browser
	$(BIN)/python -m pytest -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

# The `fvr ui` browser test drives Debian's Chromium: installed here when it is missing and this is root with apt;
# otherwise that one test skips, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium not installed (needs root and apt): the browser test will skip"; }

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) fvr-demo .pytest_cache

# A second environment for the spandrel extra (third-party checkpoints): spandrel needs torchvision, and
# torchvision must match its torch exactly, so this venv pins a torch/torchvision pair of its own (a CUDA build,
# ~5.5 GB) instead of the CPU torch of $(VENV). tests/spandrel_env fails there, rather than skips, when spandrel
# does not import (FVR_REQUIRE_SPANDREL=1).
SPANDREL_VENV := .venv-spandrel
SPANDREL_BIN := $(SPANDREL_VENV)/bin
SPANDREL_TORCH ?= torch==2.14.1 torchvision==0.29.1

$(SPANDREL_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SPANDREL_VENV)
	$(SPANDREL_BIN)/python -m pip install -q --upgrade pip
	$(SPANDREL_BIN)/python -m pip install -q $(SPANDREL_TORCH)
	$(SPANDREL_BIN)/python -m pip install -q -e ".[spandrel,test]"
	touch $@

test-spandrel: $(SPANDREL_VENV)/.installed
	FVR_REQUIRE_SPANDREL=1 $(SPANDREL_BIN)/python -m pytest -q -rs tests/spandrel_env; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$rc

clean-spandrel:
	rm -rf $(SPANDREL_VENV)
