"""lm-eval ``process_results`` of one-pass exact match; copied beside the task YAMLs a scoring job materialises.

lm-eval loads a ``!function`` from a Python file in the task YAML's folder, so
:func:`simmerge.merges.tasks.materialize_tasks` copies this file there as ``simmerge_one_pass.py``; it imports
nothing, so it runs wherever lm-eval runs.
"""


def one_pass_exact_match(doc: dict, results: list) -> dict:
    """Greedy exact match decided by one teacher-forced pass (``process_results`` of a one-pass task).

    The request is a loglikelihood request of the text greedy decoding must produce, stop sequence included
    (:func:`simmerge.merges.tasks.one_pass_cfg`); the item is correct when every one of its tokens is the model's
    argmax (lm-eval's ``is_greedy``).

    Returns
    -------
    dict
        ``exact_match`` (1.0 or 0.0) and ``gold_loglik`` (sum of the continuation's token log-probabilities).
    """
    loglik, is_greedy = results[0]
    return {"exact_match": float(is_greedy), "gold_loglik": float(loglik)}
