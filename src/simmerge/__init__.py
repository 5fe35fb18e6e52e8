"""SimMerge-bench: predict which LLM merge works from cheap similarity signals."""

__version__ = "0.1.0"
