"""Shared by every stage: config models and errors, the run layout, atomic io, logging, device choice."""
