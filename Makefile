# One entry point for every routine task. Each target creates the virtual
# environment it needs from the repository alone (Python + pip are enough).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-core bench-real bench-grid bench-pipeline bench-scale bench-features bench-multiannotator ui clean mutation

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e '.[test]'
	touch $(STAMP)

## demo: full audit of the embedded default dataset (digits + 10% injected noise)
demo: $(STAMP)
	$(BIN)/cl-pipeline audit

## test: lint, then the whole test suite (what CI runs); installs the browser of the UI test first (ui-browser)
test: lint ui-browser
	$(BIN)/python -m pytest -q

## lint: ruff lint rules and ruff format (both configured in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: every benchmark below, in turn (about 30 min on 2 cores); each rewrites its RESULTS.md section
bench: bench-core bench-real bench-grid bench-pipeline bench-scale bench-features

## bench-core: core speed/memory against cleanlab, rewrites benchmarks/RESULTS.md section
bench-core: $(STAMP)
	$(BIN)/python -m benchmarks.core

## bench-real: real label errors (MNIST, 20news): filters and rankings vs cleanlab
bench-real: $(STAMP)
	$(BIN)/python -m benchmarks.real_label_errors

## bench-grid: synthetic-noise grid (4 datasets x 3 noise x 3 sparsity x 3 seeds), ours vs cleanlab, rewrites its benchmarks/RESULTS.md section (<= 20 min)
bench-grid: $(STAMP)
	$(BIN)/python -m benchmarks.noise_grid

## ui: Dagster UI on http://127.0.0.1:3000
ui: $(STAMP)
	$(BIN)/cl-pipeline ui

.PHONY: ui-browser

## ui-browser: what tests/defs/test_browser_ui.py needs: Playwright (in the venv, from the test extra) and Debian's
## Chromium (apt-get, as root). Never fails: where Chromium cannot be installed it says why, and that test skips.
ui-browser: $(STAMP)
	@if [ -n "$$CL_PIPELINE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then \
	  echo "ui-browser: chromium $${CL_PIPELINE_CHROMIUM:-$$(command -v chromium)}"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "ui-browser: no chromium, and no apt-get as root to install it: the browser UI test will be skipped"; \
	else \
	  echo "ui-browser: apt-get install chromium (Debian's package, and a font for the screenshots; a minute or two)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; }; } || \
	  echo "ui-browser: apt-get could not install chromium: the browser UI test will be skipped"; \
	fi

.PHONY: bench-reliability

## bench-reliability: hostile trials (every kind of bad input, SIGKILLs of a real audit at each stage, reruns), rewrites docs/reliability.md (several minutes; not part of `test`)
bench-reliability: $(STAMP)
	$(BIN)/python -m benchmarks.reliability

## mutation: mutation testing of cl_pipeline/core against tests/core (mutmut, about an hour on 2 cores, niced; not part of `test` or CI); score and triage in docs/mutation-testing.md
mutation: $(STAMP)
	nice -n 10 $(BIN)/python tools/mutation.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

## bench-pipeline: cold `cl-pipeline audit` timing split, rewrites its benchmarks/RESULTS.md section
bench-pipeline: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline

## bench-scale: the audit with supplied probabilities at 1M and 10M rows vs find (and cleanlab's batched finder at 10M), rewrites its benchmarks/RESULTS.md section
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale

## check-label-studio: review loop round trip through a real Label Studio (PyPI label-studio in its own venv, build/.venv-label-studio; big first install); rewrites tests/fixtures/label_studio/
LS_VENV    ?= build/.venv-label-studio
LS_VERSION ?= 1.23.2
.PHONY: check-label-studio
$(LS_VENV)/.installed-$(LS_VERSION):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet 'label-studio==$(LS_VERSION)'
	touch $@
check-label-studio: $(STAMP) $(LS_VENV)/.installed-$(LS_VERSION)
	$(BIN)/python tools/label_studio_roundtrip.py --label-studio $(LS_VENV)/bin/label-studio --capture tests/fixtures/label_studio

## bench-features: the feature path (5-fold LogisticRegression, 1M x 50) locally and on a 2-worker Dask LocalCluster, rewrites its RESULTS.md section
bench-features: $(STAMP)
	$(BIN)/python -m benchmarks.features

## bench-multiannotator: multiple annotators (100k x 50, K=10) and multi-label (100k x 20) vs cleanlab, consensus on digits with simulated annotators; rewrites its benchmarks/RESULTS.md section
bench-multiannotator: $(STAMP)
	$(BIN)/python -m benchmarks.multiannotator
