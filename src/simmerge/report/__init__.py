"""Report stage: report.html and the results page (results.md), from a run's own files."""
