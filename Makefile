# Everything a fresh machine needs: `make demo` (installs, fetches the offline dataset, runs the demo)
# and `make test` (installs test dependencies, runs the suite on the TensorFlow and the JAX backends).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
PYTEST := $(PYTHON) -m pytest
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WORKDIR ?= runs/demo
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install install-test install-tfmot install-torch dataset demo demo-ssr test test-tf test-jax benchmarks bench-gpu \
	bench-cpu clean

install:
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q -e ".[test]"

# The tfmot peer baseline (benchmarks only). --no-deps: tf-keras requires the full `tensorflow` package,
# which pip would install beside tensorflow-cpu; the two share one module and must not both be there.
install-tfmot: install
	$(PIP) install -q --no-deps tensorflow-model-optimization==0.8.1 tf-keras==2.21.0 dm-tree

# The official PyTorch code's runtime (benchmarks only), in a virtualenv of its own so that torch never meets
# TensorFlow or JAX in one process. The CPU build; TORCH_SPEC=torch picks the registry's default build instead.
TORCH_VENV ?= .venv-torch
TORCH_SPEC ?= torch==2.13.0+cpu
install-torch:
	[ -x $(TORCH_VENV)/bin/python ] || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q "$(TORCH_SPEC)" numpy yacs

# Fashion-MNIST comes from Debian's package, so neither the demo nor the tests need the internet.
dataset:
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq dataset-fashion-mnist; }

# The main job: the ADMM paper's CNN, ADMM-l0, masked fine-tuning, shrink, SavedModel export, report.
demo: install dataset
	$(PYTHON) -m train.train --config=configs/demo/fashion_mnist_admm.py --workdir=$(WORKDIR)

# The structured-sparsity regularizers learning a CNN's widths and kernel sizes.
demo-ssr: install dataset
	$(PYTHON) -m train.train --config=configs/demo/fashion_mnist_ssr.py --workdir=runs/demo_ssr

test: install-test dataset test-tf test-jax

test-tf:
	KERAS_BACKEND=tensorflow $(PYTEST) -q -ra

# The backend-agnostic core again on JAX (tests marked tf_only are skipped there).
test-jax:
	KERAS_BACKEND=jax $(PYTEST) -q -ra

benchmarks: install
	$(PYTHON) -m benchmarks.regularizer_overhead

# Every GPU target in one run (< 8 min on one GPU, JAX only; see benchmarks/README.md for the device call).
# BENCH_GPU_FLAGS=--quick is the CPU smoke run; PEER_DIR=<folder with the official code> adds its timings.
GPU_SUITE_OUT ?= runs/gpu_suite
bench-gpu:
	KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false $(PYTHON) -m benchmarks.gpu_suite --out $(GPU_SUITE_OUT) \
	  $(if $(PEER_DIR),--peer-dir $(PEER_DIR)) $(BENCH_GPU_FLAGS)

# Ours on TF and JAX against the official PyTorch code, 7 models, one CPU (~25 min; benchmarks/README.md).
# PEER_DIR (default ../shared/peer): the official lst-net-cifar/ and sdnet/; without them ours are timed alone.
CPU_PEER_DIR = $(or $(PEER_DIR),../shared/peer)
bench-cpu: install install-torch
	$(PYTHON) -m benchmarks.cpu_vs_official --torch-python $(TORCH_VENV)/bin/python --out runs/cpu_vs_official \
	  $(if $(wildcard $(CPU_PEER_DIR)/lst-net-cifar),--peer-dir $(CPU_PEER_DIR)) $(BENCH_CPU_FLAGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
