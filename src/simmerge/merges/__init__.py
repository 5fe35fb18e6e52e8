"""Merges stage: operators (mergekit registry), merging, task YAMLs, lm-eval scoring and the expert-scores table."""
