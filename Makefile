# The front door: `make run`, `make test`, `make bench`.
# PYTHON may be given (make PYTHON=/path/to/python3.12 run); otherwise the first Python >= 3.12
# found on PATH, then under pyenv, builds .venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
WORKERS ?= 1

find_python = for p in python3.14 python3.13 python3.12 python3 python \
	  $$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    command -v $$p; exit 0; fi; done; echo "no Python >= 3.12 found; pass PYTHON=..." >&2; exit 1

PYTHON ?= $(shell $(find_python))

.DEFAULT_GOAL := run
.PHONY: run test bench bench-capacity profile soak lint migrate install clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || (echo "no Python >= 3.12 found; pass PYTHON=..." >&2; exit 1)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

# The ASGI app under uvicorn (uvloop + httptools), SQLite unless DATABASE_URL says otherwise.
run: migrate
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/uvicorn chatproject.asgi:application --host 127.0.0.1 --port $(PORT) \
	  --loop uvloop --http httptools --workers $(WORKERS) --no-access-log

test: install
	$(PY) manage.py makemigrations --check --dry-run -v0
	$(PY) -m pytest $(PYTEST_ARGS)

# Streaming benchmark (bench/stream_bench.py --help): the fake upstream vs /api/chat/openai vs /v1,
# 1 stream, 100 concurrent and 1,000 concurrent; prints one table with the targets. A few minutes.
bench: install
	$(PY) bench/stream_bench.py $(BENCH_ARGS)

# Only the 1,000-stream capacity run (errors and memory per open stream).
bench-capacity: install
	$(PY) bench/stream_bench.py --capacity $(BENCH_ARGS)

# The 100-stream run with py-spy attached to the app: where its CPU time goes (bench/results/profile-*.txt).
profile: install
	$(PY) bench/stream_bench.py --profile api,v1 $(BENCH_ARGS)

# Soak (bench/soak.py --help): 2 workers, 200 streams for 3 minutes, 10% cut by clients, 5% failed
# upstream; prints requests served, errors by kind, leaked upstream streams and memory growth.
# PostgreSQL with DATABASE_URL=postgres://..., the stream cap shared with REDIS_URL=redis://...
soak: install
	$(PY) bench/soak.py $(SOAK_ARGS)

lint: install
	$(PY) -m ruff check . || true

clean:
	rm -rf $(VENV) staticfiles
