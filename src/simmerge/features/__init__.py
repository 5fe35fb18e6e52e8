"""Features stage: the probe pass and weight sketch of each checkpoint, and the similarity features of each pair."""
