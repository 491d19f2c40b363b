# Two commands for a newcomer:  `make book`  builds the HTML,  `make test`  runs every check.
# Each creates .venv and installs everything the first time (needs only Python 3.11+ and make).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9

# Progress bars are for readers; the test run and the built HTML show results instead.
export SKIPFLOW_PROGRESS := 0

# `make test DEVICE=cuda` runs every check with the chapters' models and tensors on the GPU (TF32 off,
# deterministic algorithms: see skipflow.runtime). Without a GPU it stops at once and says so.
DEVICE ?=
ifneq ($(DEVICE),)
export SKIPFLOW_DEVICE := $(DEVICE)
endif

# Independent notebook executions run two at a time (one CPU thread each). conftest.py cuts the suite into
# units that each go to one worker whole: a notebook under nbval (its cells run in order in one kernel), one
# chapter's Colab or student-edition run, or a test file; the heaviest units are handed out first, so that
# no worker is left with a long run at the end.
JOBS   ?= 2
XDIST  := -n $(JOBS) --dist loadscope --no-loadscope-reorder

# `make book OFFLINE=1` vendors pinned copies of MathJax and the widget manager (npm packages pinned in
# package.json/package-lock.json, installed with `npm ci`) into the build, so the HTML works with no network.
OFFLINE     ?= 0
OFFLINE_DIR := _build/offline
# `make test` executes each chapter once for nbval and the strict build together: nbval writes every chapter
# whose cells all passed to EXECUTED, and the build (REUSE=1) renders those runs instead of executing the
# chapters again with the same seeds. A chapter without a passing run there is executed by the build itself.
REUSE    ?= 0
EXECUTED := _build/executed
JCACHE   := _build/jupyter_cache
NODE_STAMP  := node_modules/.package-lock.json
BOOK_FLAGS  := -W -n --keep-going
BOOK_CONFIG := $(if $(filter 1,$(OFFLINE)),--config $(OFFLINE_DIR)/_config.yml)

.PHONY: help venv book test lint unit nbval suite build browser build-then-browser student offline-assets clean check-device

help:
	@echo "make book            build the HTML book into _build/html (executes every notebook)"
	@echo "make book OFFLINE=1  the same, readable with no network (vendors MathJax and widgets; needs npm)"
	@echo "make student         exercise-only notebooks, solutions removed, into _build/student"
	@echo "make test            lint, unit tests, notebooks under nbval, strict offline build, browser test"
	@echo "make test DEVICE=cuda  the same with every chapter computing on the GPU"
	@echo "make clean           remove _build (keeps .venv)"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	# torch first, with pip and exactly pinned: ==2.13.0 takes the CPU wheel; a looser spec pulls GBs of CUDA
	# packages. pip also installs uv, which installs every other pin of requirements.txt (parallel downloads,
	# about a tenth of pip's time). No bytecode is compiled ahead: Python compiles each module it imports.
	$(BIN)/pip install --quiet --no-compile uv==$(UV_VERSION) torch==2.13.0
	grep -v '^torch==' requirements.txt > $(VENV)/requirements-without-torch.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r $(VENV)/requirements-without-torch.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/uv pip check --quiet --python $(BIN)/python
	@touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "OFFLINE=1 needs npm (Node.js): sudo apt-get install npm"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

offline-assets: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/offline.py prepare --stage $(OFFLINE_DIR) $(if $(filter 1,$(REUSE)),--jupyter-cache $(JCACHE))

# The vendored assets of an earlier OFFLINE=1 build are removed first; an offline build copies them again.
book: $(STAMP) $(if $(filter 1,$(OFFLINE)),offline-assets)
	rm -rf _build/html/_vendor
ifeq ($(REUSE),1)
	$(BIN)/python tools/reuse_runs.py prime $(EXECUTED) $(JCACHE)
endif
	$(BIN)/jupyter-book build . $(BOOK_FLAGS) $(BOOK_CONFIG)
ifeq ($(OFFLINE),1)
	$(BIN)/python tools/offline.py finish --stage $(OFFLINE_DIR) _build/html
endif
	@echo "The book is ready: open $(CURDIR)/_build/html/index.html"

student: $(STAMP)
	$(BIN)/python tools/student.py --out _build/student

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Where the chapters will compute; with SKIPFLOW_DEVICE=cuda and no GPU this fails with a clear message.
check-device: $(STAMP)
	@$(BIN)/python tools/check_device.py

# The browser test needs the built book: it runs in its own step, after the build.
unit: $(STAMP)
	$(BIN)/pytest $(XDIST) tests/ -m "not browser"

nbval: $(STAMP)
	$(BIN)/pytest $(XDIST) --nbval-lax --nbval-current-env chapters/

# make test runs the unit tests and nbval as one pytest session, so both workers stay busy until the end.
suite: $(STAMP)
	rm -rf $(EXECUTED)
	SKIPFLOW_EXECUTED_DIR=$(CURDIR)/$(EXECUTED) $(BIN)/pytest $(XDIST) -m "not browser" --durations=12 --nbval-lax \
	  --nbval-current-env tests/ chapters/

# make test builds the offline edition, so the browser test checks the vendored MathJax and widgets too.
build: $(STAMP)
	$(MAKE) --no-print-directory book OFFLINE=1 REUSE=1

browser: $(STAMP)
	SKIPFLOW_BROWSER_REQUIRE=offline $(BIN)/pytest -n $(JOBS) --dist load -m browser tests/test_browser.py

# The suite (unit tests, nbval, the Colab and student runs) keeps both cores busy; the strict build renders
# nbval's runs of the chapters and starts as soon as they are all written; the browser test needs the build.
test:
	$(MAKE) --no-print-directory venv
	$(MAKE) --no-print-directory check-device lint
	rm -rf $(EXECUTED)
	$(MAKE) --no-print-directory -j3 suite build-then-browser
	@echo "make test: all checks passed"

# Part of make test, beside the suite: npm ci, then a wait until nbval has run every chapter (the suite runs
# them after the Colab and student-edition runs, see conftest.py), then the strict build and the browser test,
# while the suite's unit tests finish.
build-then-browser: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/reuse_runs.py wait $(EXECUTED)
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory browser

clean:
	rm -rf _build
