# StreetWatch: `make demo` and `make test` are the quick start (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv model demo test system-deps lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Debian packages the tests and the live demo need (ffmpeg, GStreamer RTSP server, PostgreSQL,
# real street footage). Installed only when missing; needs root or sudo.
system-deps:
	scripts/system-deps.sh

model: venv
	$(BIN)/streetwatch models fetch default

demo: model system-deps
	$(BIN)/python -m streams.demo

test: model system-deps
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The peer (Ultralytics + full torch, the `train` extra) gets its own venv, never the runtime's.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -e '.[train]'
	rm -f $(BENCH_VENV)/.installed-* && touch $@

# Every section but the hour-long soak (~40 min on 2 cores, the peer's venv included);
# one section: $(BIN)/python -m benchmarks --only stages (or --only soak)
bench: model system-deps $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
