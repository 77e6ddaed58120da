"""Clean articles → Parquet files with the columns of Hugging Face's wikimedia/wikipedia dataset: `extract --format
parquet`.

id, url, title and text, all strings, as `datasets.load_dataset("wikimedia/wikipedia", "20231101.en")` gives them, so
code written for that dataset (and `datasets.load_dataset("parquet", data_files=...)`, DuckDB, pandas, polars) reads
ours unchanged. The articles come from the same Rust pipeline as the JSONL and text formats (rows equal the JSONL
output's, in the same order); pyarrow (an optional extra, `pip install "wikigpt[parquet]"`) writes them.

Files are rolled by size like the other formats: `<input stem>-NNNNN.parquet`, each about `file_size` bytes at
most. Rows are written in row groups of at most ROW_GROUP_BYTES of text, so memory stays flat in the part's size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MissingExtraError

#: text bytes buffered per row group: big enough for good compression and fast scans, small enough to keep memory
#: flat (a row group is held in memory twice while pyarrow encodes it)
ROW_GROUP_BYTES = 64 * 1000 * 1000
COLUMNS = ("id", "url", "title", "text")


def import_pyarrow():
    """pyarrow and pyarrow.parquet, or one line saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError('--format parquet needs pyarrow: pip install "wikigpt[parquet]"') from None
    return pyarrow, pyarrow.parquet


def write_parquet_files(
    paths: Sequence[Path],
    staging: Path,
    prefixes: Sequence[str],
    file_size: int,
    open_stream: Callable[[Path], Any],
) -> list[dict]:
    """Each input's clean articles as Parquet files in `staging`; the same result shape as core.extract_files:
    one {"files": [...], "stats": {...}} per input, in input order. `open_stream(path)` is the Rust pipeline over
    one file (extract's ArticleStream: article tuples, then its stats)."""
    pa, pq = import_pyarrow()
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    results = []
    for path, prefix in zip(paths, prefixes):
        stream = open_stream(path)
        files = _RollingParquet(pa, pq, schema, staging, prefix, file_size)
        try:
            for article_id, _revid, _ns, title, url, text in stream:
                files.add(str(article_id), url, title, text)
            files.close()
        finally:
            stream.close()
            files.abort()  # after close() there is nothing left to abort
        results.append({"files": files.written, "stats": json.loads(stream.stats)})
    return results


class _RollingParquet:
    """Parquet files `<prefix>-NNNNN.parquet` in one folder, a new one once the current one passes `file_size`;
    each is fsynced when it is closed, and the extract's staging folder makes the set appear at once."""

    def __init__(self, pa, pq, schema, folder: Path, prefix: str, file_size: int):
        self.pa, self.pq, self.schema = pa, pq, schema
        self.folder, self.prefix, self.file_size = folder, prefix, file_size
        # a row group never outgrows a file: small --file-size values still roll at about that size
        self.row_group_bytes = max(1, min(ROW_GROUP_BYTES, file_size))
        self.rows: dict[str, list[str]] = {name: [] for name in COLUMNS}
        self.buffered_bytes = 0
        self.written: list[str] = []
        self.file = None
        self.writer = None

    def add(self, *values: str) -> None:
        for name, value in zip(COLUMNS, values):
            self.rows[name].append(value)
        self.buffered_bytes += len(values[-1])
        if self.buffered_bytes >= self.row_group_bytes:
            self._write_row_group()

    def close(self) -> None:
        """Write what is buffered and close the last file."""
        if self.rows["id"]:
            self._write_row_group()
        self._finish_file()

    def abort(self) -> None:
        """Close an open file without finishing it (the staging folder is removed with it). The writer is closed
        first: a ParquetWriter left open writes its footer when it is garbage-collected, into the closed file, and
        prints a traceback ("write to closed file") under the one-line "interrupted"."""
        if self.writer is not None:
            try:
                self.writer.close()
            except (OSError, ValueError):
                pass  # the file is thrown away either way
        if self.file is not None:
            self.file.close()
        self.file = self.writer = None

    def _write_row_group(self) -> None:
        if self.writer is None:
            path = self.folder / f"{self.prefix}-{len(self.written):05d}.parquet"
            self.file = open(path, "wb")
            self.writer = self.pq.ParquetWriter(self.file, self.schema)
            self.written.append(str(path))
        self.writer.write_table(self.pa.Table.from_pydict(self.rows, schema=self.schema))
        self.rows = {name: [] for name in COLUMNS}
        self.buffered_bytes = 0
        if self.file.tell() >= self.file_size:
            self._finish_file()

    def _finish_file(self) -> None:
        if self.writer is None:
            return
        self.writer.close()  # the footer; pyarrow leaves a file object it was given open
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = self.writer = None
