"""Route a job's logging, warnings and stderr to its Snakemake ``log:`` file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | None) -> Iterator[logging.Logger]:
    """Send the root logger and stderr to ``path`` (append) for the duration of the block.

    Exceptions raised inside the block are logged with their traceback before they propagate, so the
    log file says why a job failed.
    """
    root = logging.getLogger()
    if path is None:
        yield root
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
        previous_level = root.level
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stderr(stream):
                yield root
        except BaseException:
            root.exception("job failed")
            raise
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(previous_level)
            sys.stderr.flush()
