# Two commands for a newcomer:  `make book`  builds the HTML,  `make test`  runs every check.
# Each creates .venv and installs everything the first time (needs only Python 3.11+ and make).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Progress bars are for readers; the test run and the built HTML show results instead.
export SKIPFLOW_PROGRESS := 0
# Matplotlib must not try to open windows in a headless run.
export MPLBACKEND := Agg

.PHONY: help venv book test lint unit nbval build clean

help:
	@echo "make book   build the HTML book into _build/html (executes every notebook)"
	@echo "make test   lint, unit tests, notebooks under nbval, strict book build"
	@echo "make clean  remove _build (keeps .venv)"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned: ==2.13.0 takes the CPU wheel; a looser spec pulls GBs of CUDA packages
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is ready: open $(CURDIR)/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/pytest tests/

nbval: $(STAMP)
	$(BIN)/pytest --nbval-lax --nbval-current-env chapters/

build: book

test: lint unit nbval build
	@echo "make test: all checks passed"

clean:
	rm -rf _build
