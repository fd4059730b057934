# StreetWatch: `make demo` and `make test` are the quick start (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Training (Ultralytics + torch, the `train` extra) gets its own venv, never the runtime's.
# torch and torchvision are pinned as a pair: an unpinned torch resolves to a build that the
# newest torchvision refuses.
TRAIN_VENV := .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TORCH_PAIR := torch==2.14.1 torchvision==0.29.1

.PHONY: venv train-venv model demo test test-train system-deps lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

$(TRAIN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q --disable-pip-version-check $(TORCH_PAIR)
	$(TRAIN_VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev,train]' $(TORCH_PAIR)
	rm -f $(TRAIN_VENV)/.installed-* && touch $@

train-venv: $(TRAIN_STAMP)

# Debian packages the tests and the live demo need (ffmpeg, GStreamer RTSP server, PostgreSQL,
# real street footage). Installed only when missing; needs root or sudo.
system-deps:
	scripts/system-deps.sh

model: venv
	$(BIN)/streetwatch models fetch default

demo: model system-deps
	$(BIN)/python -m streams.demo

# The main suite (where tests/train skip: no Ultralytics), then the training flow in its own
# venv, which is only built (a large download the first time) once the main suite passed.
test: model system-deps
	$(BIN)/pytest
	$(MAKE) test-train

# Only the training flow: dataset from real cases -> train -> ONNX -> register -> int8 -> evaluate.
test-train: model system-deps $(TRAIN_STAMP)
	$(TRAIN_VENV)/bin/pytest tests/train

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
	rm -rf $(VENV) $(TRAIN_VENV) build *.egg-info .pytest_cache .ruff_cache
