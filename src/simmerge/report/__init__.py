"""Report stage: report.html from a run's own files."""
