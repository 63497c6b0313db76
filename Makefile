# The two commands: `make run` (service on SQLite with sample data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint audit bench bench-web bench-workers swagger fixtures clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: install
	$(PY) get_raw_data.py --demo
	$(PY) app.py

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/flake8
	$(VENV)/bin/mypy

audit: install
	$(VENV)/bin/pip-audit -r requirements-dev.txt --progress-spinner off

bench: install bench-web
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.growth
	$(MAKE) --no-print-directory bench-workers

# Ingest of many markets in-process against 1, 2 and 4 worker processes (bench/workers.py; Redis db 11).
bench-workers: install
	$(PY) -m bench.workers $(BENCH_WORKERS_ARGS)

bench-web: install
	$(PY) -m bench.web

swagger: install
	$(VENV)/bin/flask --app app export-swagger

fixtures: install
	$(PY) -m tests.fakes.make_fixtures

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
