"""Catalog stage: build, fetch, convert or fine-tune each checkpoint, with its manifest and pre-flight checks.

Also the built-in skills (generated train / eval / probe data) that the default catalog is trained and scored on.
"""
