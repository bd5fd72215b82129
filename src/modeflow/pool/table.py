"""Reading a pool's own table files (url lists, image-folder caption files): one parser for all.

The shard plan counts a file's rows and the pool step reads them; both go through `parse_options`
here, so a csv caption with a quoted newline is one row for both and the planned shard count always
matches the rows the pool step writes.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import fsspec
import pyarrow as pa

from modeflow.common.errors import ConfigError, InputDataError

_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}


def table_format(path: str, fmt: str = "auto") -> str:
    """`fmt`, or the format the file's extension names."""
    if fmt != "auto":
        return fmt
    suffix = Path(str(path).split("?")[0]).suffix.lower()
    if suffix not in _FORMATS:
        raise ConfigError(
            f"cannot tell the format of '{path}' from its extension; set its `format` key "
            "(parquet, csv or tsv)"
        )
    return _FORMATS[suffix]


def parse_options(fmt: str):
    """How a text table is split into rows and fields.

    csv quotes the RFC 4180 way, so a quoted field may hold newlines; tsv (IANA) has no quoting, and
    web captions such as `"Hello" he said` must stay whole rather than open a quote that swallows
    the next rows.
    """
    import pyarrow.csv as pacsv

    if fmt == "tsv":
        return pacsv.ParseOptions(delimiter="\t", quote_char=False)
    return pacsv.ParseOptions(delimiter=",", newlines_in_values=True)


def read_table(path: str, fmt: str, text_cols=()) -> pa.Table:
    """The whole table. Text columns are read as bytes so that invalid UTF-8 is found and reported
    per row by the caller instead of failing the whole read (or being replaced) in the csv parser."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = table_format(path, fmt)
    with _open(path, fmt) as fh:
        if fmt == "parquet":
            return pq.read_table(fh)
        return pacsv.read_csv(
            fh,
            parse_options=parse_options(fmt),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in text_cols}),
        )


def count_rows(path: str, fmt: str = "auto") -> int:
    """Data rows of a table: parquet from its footer; text formats parsed as `read_table` parses
    them (streamed, one column kept), so the count is the number of rows the pool step reads."""
    return _count_rows_cached(str(path), fmt)


@lru_cache(maxsize=32)
def _count_rows_cached(path: str, fmt: str) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = table_format(path, fmt)
    with _open(path, fmt) as fh:
        if fmt == "parquet":
            return pq.ParquetFile(fh).metadata.num_rows
        names = column_names(path, fmt)
        if not names:
            return 0
        first = names[0]
        reader = pacsv.open_csv(
            fh,
            parse_options=parse_options(fmt),
            convert_options=pacsv.ConvertOptions(include_columns=[first],
                                                 column_types={first: pa.binary()}),
        )
        return sum(batch.num_rows for batch in reader)


def column_names(path: str, fmt: str = "auto") -> list[str]:
    """A table's column names from its header alone: a parquet footer's schema, a text table's
    first row (parsed as `read_table` parses the file); [] for an empty text file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = table_format(path, fmt)
    with _open(path, fmt) as fh:
        if fmt == "parquet":
            return list(pq.read_schema(fh).names)
        if not fh.read(1 << 16).strip():
            return []
        fh.seek(0)
        # values stay unchecked bytes: bad UTF-8 in a caption is the pool step's to report, by row
        reader = pacsv.open_csv(fh, parse_options=parse_options(fmt),
                                read_options=pacsv.ReadOptions(block_size=1 << 16),
                                convert_options=pacsv.ConvertOptions(check_utf8=False))
        return list(reader.schema.names)


@contextmanager
def _open(path: str, fmt: str):
    """fsspec.open with the pool's errors: a missing file or an unreadable table names the file."""
    try:
        with fsspec.open(path, "rb") as fh:
            yield fh
    except FileNotFoundError:
        raise InputDataError(f"pool file not found: {path}") from None
    except pa.ArrowInvalid as err:
        raise InputDataError(f"{path}: cannot read as {fmt}: {err}") from None
