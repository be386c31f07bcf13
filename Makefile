# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CATALOG ?= var/catalog

.PHONY: run test lint bench bench-audio bench-video bench-server bench-ingest clean demo browser

# The ray extra is installed too: tests/indexer/test_ray.py runs the Ray path on a local Ray and
# fails, rather than skips, without it. The Makefile is a prerequisite so that a change of extras
# here reaches an existing .venv, and setup.py so that a change of the nanhu.* folder mapping
# reaches the editable install's finder.
$(STAMP): pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

LISTEN ?= 127.0.0.1:50051

# Seeds the embedded catalog with demo works (once), shows a screening, then serves gRPC.
run: $(STAMP)
	$(BIN)/python -m nanhu.benchmarks.demo --catalog $(CATALOG)
	$(BIN)/nanhu serve --catalog $(CATALOG) --listen $(LISTEN)

# The review page's tests (tests/server/test_review_browser.py) drive Debian's chromium through
# chromium-driver with selenium and fail, rather than skip, without them: installed here, with
# apt (CI runs as root), whenever either command is missing.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (the review page's browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not real_media" tests

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/nanhu bench all

bench-audio: $(STAMP)
	$(BIN)/nanhu bench audio

bench-video: $(STAMP)
	$(BIN)/nanhu bench video

bench-server: $(STAMP)
	$(BIN)/nanhu bench server

bench-ingest: $(STAMP)
	$(BIN)/python -m nanhu.benchmarks.ingest_bench

clean:
	rm -rf $(VENV) var .pytest_cache
