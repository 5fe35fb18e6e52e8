"""Atomic writes and scratch space: a partial output never looks complete, and a killed job's leftovers are
removed by the next job that writes to the same place.

Temporary names carry the host and process id of their writer (``<prefix><host>-<pid>-<random>``). A job killed
with SIGKILL cannot clean up; the next writer on the same host removes the leftovers of writers that are no longer
running, so a resumed run does not fill ``/dev/shm`` or ``results/`` with half-written merges.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _owner() -> str:
    # read at call time: a forked worker has its own pid
    return f"{socket.gethostname()}-{os.getpid()}-"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(directory: str | os.PathLike, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the temporaries ``<prefix><host>-<pid>-*<suffix>`` in ``directory`` whose writer on this host is gone.

    Only this host's entries are looked at (a shared file system may hold another node's live ones); a pid that
    is running again keeps its entries (the safe side of pid reuse). Returns what was removed.
    """
    host = socket.gethostname()
    pattern = re.compile(re.escape(f"{prefix}{host}-") + r"(\d+)-.*" + re.escape(suffix))
    removed = []
    for path in Path(directory).glob(glob.escape(f"{prefix}{host}-") + "*"):
        match = pattern.fullmatch(path.name)
        if not match or _running(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.warning("removed %s, left by a killed process (pid %s)", path, match.group(1))
        removed.append(path)
    return removed


@contextlib.contextmanager
def scratch_directory(prefix: str, directory: str | os.PathLike | None = None) -> Iterator[Path]:
    """A temporary directory (deleted afterwards) in ``directory`` (default: the system temp dir), after removing
    what killed processes of this host left there under the same prefix."""
    directory = Path(directory if directory is not None else tempfile.gettempdir())
    remove_stale(directory, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix + _owner(), dir=directory))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.", ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; results are shared (cluster users, --report), so apply the umask instead
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.", ".tmp")
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}", suffix=".tmp", dir=path.parent))
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON with sorted keys and a trailing newline, so equal objects give equal bytes."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path)


def write_jsonl(rows: list[dict], path: str | os.PathLike) -> None:
    write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows), path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def markdown_table(table, align: Sequence[str]) -> str:
    """A DataFrame of text cells as a Markdown pipe table, one line per row, with a trailing newline.

    The one Markdown table writer of the package (pandas' ``DataFrame.to_markdown`` would add tabulate). A ``|``
    inside a cell (an unordered pair ``a|b``) is escaped, so that it does not split the cell.

    Parameters
    ----------
    table : pandas.DataFrame
        The cells, already formatted as text; the column names are the header.
    align : sequence of str
        ``"left"`` or ``"right"`` for each column.

    Examples
    --------
    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame({"name": ["a"], "score": ["0.500"]}), ["left", "right"]), end="")
    | name | score |
    |---|---:|
    | a | 0.500 |
    """
    lines = [
        "| " + " | ".join(str(column) for column in table.columns) + " |",
        "|" + "|".join("---:" if side == "right" else "---" for side in align) + "|",
        *(
            "| " + " | ".join(str(cell).replace("|", r"\|") for cell in row) + " |"
            for row in table.itertuples(index=False, name=None)
        ),
    ]
    return "\n".join(lines) + "\n"


# The Parquet schema metadata key of a table's record (e.g. its provenance), beside pandas' own metadata.
RECORD_KEY = b"simmerge_record"


def write_table(table, path: str | os.PathLike, *, record: dict[str, Any] | None = None) -> None:
    """Write a DataFrame as Parquet (by suffix ``.parquet``) or CSV, atomically and without the index.

    ``record`` (Parquet only): a JSON-able mapping stored in the file's schema metadata under :data:`RECORD_KEY`
    (:func:`read_table_record`), outside the data: reading the table back gives the same DataFrame.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix != ".parquet":
            table.to_csv(tmp, index=False)
        elif record is None:
            table.to_parquet(tmp, index=False, engine="pyarrow")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            arrow = pa.Table.from_pandas(table, preserve_index=False)
            metadata = {**(arrow.schema.metadata or {}), RECORD_KEY: json.dumps(record, sort_keys=True).encode()}
            pq.write_table(arrow.replace_schema_metadata(metadata), tmp)


def read_table_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record :func:`write_table` stored in a Parquet file's metadata, or None."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[RECORD_KEY]) if RECORD_KEY in metadata else None
