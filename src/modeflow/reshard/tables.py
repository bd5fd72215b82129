"""The reshard's parquet tables: reading them with errors that name the file, and the index's
per-member list columns, which both phases lay out alike."""

from __future__ import annotations

import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.errors import InputDataError

# the index's per-member list columns (one value per member header of the row's sample): offset
# from the sample's first block, checksum base and stored checksum field (see TarIndex)
MEMBER_COLUMNS = {"member_blocks": np.int64, "member_chk_base": np.int64, "member_chk_field": np.uint64}


@contextlib.contextmanager
def open_parquet(path, columns, missing_hint: str = ""):
    """A parquet file open for reading `columns` (checked present); errors name the file. Plain
    ParquetFile reads: for files of a few thousand rows, pq.read_table's dataset layer costs as
    much as the read."""
    try:
        with pq.ParquetFile(path) as parquet:
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise InputDataError(f"{path}: missing column(s) {missing}{missing_hint}")
            yield parquet
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputDataError(f"{path}: cannot read parquet: {exc}") from None


def read_columns(path, columns) -> pa.Table:
    with open_parquet(path, columns) as parquet:
        return parquet.read(columns=columns, use_threads=False)


def concat_ranges(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenation of arange(first[i], first[i] + count[i]) over i, without a Python loop: the
    flat positions of rows' members in a per-member column."""
    offsets = np.cumsum(count) - count
    return np.repeat(first - offsets, count) + np.arange(count.sum())
