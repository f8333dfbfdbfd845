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

# The runtime install only (what a robot gets): numpy, soundfile, soxr, onnxruntime, LiteRT, sounddevice, typer.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[tflite,mic]'
	@touch $@

# The training distribution (export/: scikit-learn, TensorFlow, converters) and the test tools on top.
$(VENV)/.dev: pyproject.toml export/pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[tflite,mic,mqtt,ws,ros2,dev]' -e './export[dev,cluster]'
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
	$(PY) -m benchmarks.run --docs
	$(PY) -m benchmarks.noisy_sessions --data $(DATA)
	$(PY) -m benchmarks.gain_invariance --data $(DATA)

models: setup-dev
	$(PY) -m edge_ser_train.make_models --data $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info export/build export/*.egg-info .pytest_cache
