"""Tests of simmerge.core.logs: a job's logging, warnings and stderr go to its log file, and why it failed too."""

from __future__ import annotations

import logging
import sys
import warnings

import pytest

from simmerge.core.logs import log_to


def test_logging_warnings_and_stderr_of_the_block_go_to_the_log_file(tmp_path):
    path = tmp_path / "logs" / "job.log"
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with log_to(str(path)):
        logging.getLogger("simmerge.test").info("merging %s", "fr__de")
        warnings.warn("a library complains", UserWarning, stacklevel=1)
        print("from a library, on stderr", file=sys.stderr)
    logging.getLogger("simmerge.test").warning("after the block")
    text = path.read_text(encoding="utf-8")
    assert "INFO simmerge.test: merging fr__de" in text
    assert "UserWarning: a library complains" in text
    assert "from a library, on stderr" in text
    assert "after the block" not in text
    assert root.handlers == handlers and root.level == level  # the caller's logging is given back


def test_a_failing_job_logs_its_traceback_and_still_raises(tmp_path):
    path = tmp_path / "job.log"
    path.write_text("an earlier attempt\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad input"), log_to(str(path)):
        raise ValueError("bad input")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("an earlier attempt\n")  # appended, not replaced
    assert "ERROR root: job failed" in text and "ValueError: bad input" in text and "Traceback" in text


def test_no_log_file_leaves_logging_as_it_is(tmp_path):
    with log_to(None) as logger:
        assert logger is logging.getLogger()
    assert not any(tmp_path.iterdir())
