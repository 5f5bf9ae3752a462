# The front door: `make run`, `make test`, `make bench`.
# PYTHON may be given (make PYTHON=/path/to/python3.12 run); otherwise the first Python >= 3.12
# found on PATH, then under pyenv, builds .venv.
# .venv is installed from requirements.lock (exact versions, with hashes; pip only). `make lock`
# re-resolves it from pyproject.toml on purpose, newest versions allowed (uv, in .venv for that only).
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

LOCK := requirements.lock
# `make lock` upgrades everything; LOCK_ARGS= keeps today's pins and only adds what pyproject.toml
# now asks for; LOCK_ARGS='--upgrade-package django' upgrades one.
LOCK_ARGS ?= --upgrade

.DEFAULT_GOAL := run
.PHONY: run test test-fast bench bench-capacity profile soak lint lock migrate install clean

$(PY):
	@test -n "$(PYTHON)" || (echo "no Python >= 3.12 found; pass PYTHON=..." >&2; exit 1)
	$(PYTHON) -m venv $(VENV)

# Everything (pip and setuptools included) from the lock, checked against its hashes; then the project
# itself, editable, resolving nothing. pip check: the lock has everything pyproject.toml asks for.
$(VENV)/.installed: $(LOCK) pyproject.toml | $(PY)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@$(PY) -m pip check >/dev/null || { $(PY) -m pip check; \
	  echo "$(LOCK) lacks what pyproject.toml asks for: make lock LOCK_ARGS=" >&2; exit 1; }
	touch $@

install: $(VENV)/.installed

# Every extra (test, bench, lint), for every platform and Python >= 3.12, with hashes. setuptools
# (the build backend) and pip are locked too: installs use them from the lock, not from the index.
lock: | $(PY)
	$(PY) -m pip install -q uv
	printf 'setuptools>=69\npip\n' | UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip compile \
	  pyproject.toml - --universal --generate-hashes --all-extras --python $(PY) \
	  --custom-compile-command 'make lock' --quiet $(LOCK_ARGS) -o $(LOCK)

migrate: install
	$(PY) manage.py migrate --noinput

# The ASGI app under uvicorn (uvloop + httptools), SQLite unless DATABASE_URL says otherwise.
# The first run writes .env with fresh secrets (chatproject/first_run.py; never over an existing one).
run: install
	@$(PY) -m chatproject.first_run
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/uvicorn chatproject.asgi:application --host 127.0.0.1 --port $(PORT) \
	  --loop uvloop --http httptools --workers $(WORKERS) --no-access-log

# Everything, browser tests included (they skip, and say so at the end, without Chromium).
test: install
	$(PY) manage.py makemigrations --check --dry-run -v0
	$(PY) -m pytest $(PYTEST_ARGS)

# Without the tests marked slow (1,000 streams, fuzzing, two workers, browser): under a minute.
test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

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

# ruff (lint and format check, everything) and mypy (the application packages: [tool.mypy] in
# pyproject.toml). All three run; any finding fails the target.
lint: install
	@status=0; \
	(set -x; $(VENV)/bin/ruff check .) || status=1; \
	(set -x; $(VENV)/bin/ruff format --check .) || status=1; \
	(set -x; $(PY) -m mypy) || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) staticfiles
