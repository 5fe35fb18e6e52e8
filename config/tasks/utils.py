"""Metric helpers for the SimMerge lm-eval tasks (loaded by ``!function`` from the task YAMLs)."""

from __future__ import annotations

import sacrebleu


def chrf_item(references: list[str], predictions: list[str]) -> float:
    """Sentence-level chrF of one prediction, on a 0-1 scale.

    lm-eval calls this once per document with one reference and one prediction. A per-item score with ``mean``
    aggregation (unlike lm-eval's corpus-level ``chrf``, 0-100) keeps one number per item, so scores can be
    bootstrapped per item and sit on the same scale as ``exact_match``.

    Parameters
    ----------
    references : list of str
        The gold answer, as a one-element list.
    predictions : list of str
        The filtered model output, as a one-element list.

    Returns
    -------
    float
        chrF (character 6-grams, beta 2, sacrebleu defaults) of the lower-cased strings, divided by 100.
    """
    # Lower-cased so that chrF agrees with exact_match, which ignores case.
    return sacrebleu.sentence_chrf(predictions[0].lower(), [references[0].lower()]).score / 100.0
