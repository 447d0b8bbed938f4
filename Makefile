# Each target creates .venv and installs what it needs: `make demo` and `make test` work on a fresh
# Linux machine that has only Python >= 3.10.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test fuzz test-gpu bench parity lint coverage docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[mpi,examples]'
	touch $@

$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,bench]'
	touch $@

demo: $(VENV)/.demo
	$(BIN)/disttorch launch --nproc-per-node 2 examples/ddp_digits.py

# The multi-host launcher tests start a real sshd on loopback aliases; as root on Debian/Ubuntu, install it
# when missing (without it those tests skip and say why).
SSHD_INSTALL := if [ ! -x /usr/sbin/sshd ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1 \
	|| (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends openssh-server >/dev/null 2>&1) || echo "note: could not install openssh-server"; fi

test: $(VENV)/.test
	@$(SSHD_INSTALL)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The fuzz tests run in `make test` with a small example count; this runs them 50 times longer.
fuzz: $(VENV)/.test
	DISTTORCH_FUZZ_SCALE=$${DISTTORCH_FUZZ_SCALE:-50} $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

# On a machine with an NVIDIA GPU and driver (see docs/gpu-validation.md). CuPy needs the CUDA 12 libraries
# (NVRTC included) from a local toolkit, or from pip with CUPY_EXTRA=ctk; the NCCL tests need the NCCL library.
# Fails, saying why, when no GPU is usable: every test would only skip.
CUPY_EXTRA ?=
test-gpu: $(VENV)/.test
	$(PIP) -e '.[cuda12x]' $(if $(CUPY_EXTRA),'cupy-cuda12x[$(CUPY_EXTRA)]')
	$(BIN)/python benchmarks/gpu.py --check
	$(BIN)/python -m pytest -q -p no:cacheprovider -m gpu -rs

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/train_step.py

parity: $(VENV)/.bench
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/parity

lint: $(VENV)/.test
	$(PIP) ruff
	$(BIN)/python -m ruff check disttorch launcher kernels tests benchmarks examples

# The documentation site (mkdocs.yml, docs/): warnings are errors; the test suite builds it too.
docs: $(VENV)/.test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

coverage: $(VENV)/.test
	$(BIN)/python docs/coverage.py

clean:
	rm -rf $(VENV) build dist *.egg-info site
