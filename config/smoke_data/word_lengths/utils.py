"""Custom metric of the word_lengths task: lm-eval calls it per document as fn(references=[gold], predictions=[out])."""

import re


def length_match(references, predictions, **kwargs):
    """1.0 when the first integer of the model's answer is the word's length, else 0.0."""
    found = re.search(r"-?\d+", predictions[0])
    return float(found is not None and int(found.group()) == int(references[0]))
