# edge-ser: `make demo` runs the shipped default model; `make test` passes the tests.  Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EDGE := $(VENV)/bin/edge-ser
DATA ?= ../shared/data
SAMPLE := edge_ser/assets/sample.wav

.PHONY: all demo test bench models setup setup-dev sysdeps clean

all: test

sysdeps:
	@bash scripts/sysdeps.sh

# The runtime install only (what a robot gets): numpy, scipy, soundfile, onnxruntime, LiteRT, sounddevice, typer.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[tflite,mic]'
	@touch $@

# Training and test dependencies on top (scikit-learn, TensorFlow, converters, librosa for parity tests).
$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[tflite,mic,train,dev]'
	@touch $@

setup: sysdeps $(VENV)/.runtime
setup-dev: sysdeps $(VENV)/.dev

demo: setup
	$(EDGE) models
	$(EDGE) classify $(SAMPLE)
	$(EDGE) listen --input $(SAMPLE) --fast

test: setup-dev
	$(PY) -m pytest -q

bench: setup-dev
	$(PY) -m benchmarks.run --readme

models: setup-dev
	$(PY) -m export.make_models --data $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
