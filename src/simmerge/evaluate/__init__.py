"""Evaluation: the labels table, ranking of operators, the predictor, selection, the comparison and its costs."""
