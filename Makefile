# Two entry points for a fresh machine (see README.md):
#   make demo   set up the virtual environment, run the demo pipeline, write report.html
#   make test   set up the virtual environment, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: setup demo test bench clean
setup: $(VENV)/.installed

# Re-installs when the dependency list changes. torch/torchvision pins match the wheels pip finds
# on these machines' local disk; elsewhere they come from PyPI.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) all
	$(BIN)/snakemake --report report.html
	@echo "Results in results/, report in report.html"

# the Slurm test starts a real single-node cluster: Debian's munge/slurmctld/slurmd (installed
# here when missing, which needs root; a no-op when present)
test: setup
	bash tests/ci_system_packages.sh
	$(BIN)/python -m pytest

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf results report.html .snakemake
