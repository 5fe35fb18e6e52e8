"""Online stage: the contextual bandit, replayed on the labels and run live."""
