"""DataComp's CommonPool as a pool (`pool.source: datacomp`): a metadata directory of parquets (one
per part, DataComp's schema), each optionally with a same-named `.npz` of OpenAI CLIP features
whose rows follow the parquet's, and optionally the `shards/` that DataComp's download_upstream.py
wrote with img2dataset.

This module reads and checks those files: columns a filter needs, npz rows aligned with their
parquet, and shard uids that the metadata does not know (counted and reported, not silently kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeflow.common.errors import ConfigError, InputDataError

# CommonPool's metadata parquet columns (DataComp's README and download_upstream.py)
METADATA_COLUMNS = ("uid", "url", "text", "original_width", "original_height", "sha256",
                    "clip_b32_similarity_score", "clip_l14_similarity_score", "face_bboxes")
# npz arrays: OpenAI CLIP ViT-B/32 and ViT-L/14 image and text features, float16, one row per
# parquet row (apply_filter.py reads np.load(f)["l14_img"])
FEATURE_KEYS = {"b32_img": 512, "b32_txt": 512, "l14_img": 768, "l14_txt": 768}


@dataclass(frozen=True)
class CommonPool:
    """A CommonPool metadata directory: its parquets (sorted by name) and their npz files."""

    directory: str
    parquets: tuple[str, ...]

    @classmethod
    def open(cls, directory: str, key: str = "pool.datacomp.metadata") -> "CommonPool":
        if not os.path.isdir(directory):
            raise ConfigError(f"{key}: not a directory: {directory}")
        # DataComp takes every entry whose name contains ".parquet"; part files end with it
        parquets = tuple(sorted(str(p) for p in Path(directory).iterdir() if p.name.endswith(".parquet")))
        if not parquets:
            raise InputDataError(f"{directory}: no .parquet metadata file ({key})")
        return cls(str(directory), parquets)

    @staticmethod
    def npz_of(parquet: str) -> str:
        return str(parquet)[: -len(".parquet")] + ".npz"

    def num_rows(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parquets)

    def read(self, parquet: str, columns: Sequence[str], *, needed_by: str = "") -> pa.Table:
        """The columns of one metadata parquet; a missing one is an error naming file and column."""
        return read_metadata(parquet, columns, needed_by=needed_by)

    def features(self, parquet: str, key: str, num_rows: int | None = None) -> np.ndarray:
        return read_features(parquet, self.npz_of(parquet), key, num_rows)


def read_metadata(parquet: str, columns: Sequence[str], *, needed_by: str = "") -> pa.Table:
    try:
        schema = pq.read_schema(parquet)
    except FileNotFoundError:
        raise InputDataError(f"metadata parquet not found: {parquet}") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        why = f" (needed by {needed_by})" if needed_by else ""
        raise InputDataError(f"{parquet}: no column {missing[0]!r}{why}; missing {missing}, "
                             f"the file has {schema.names}")
    table = pq.read_table(parquet, columns=list(columns))
    for col in columns:
        if table[col].null_count:
            i = pc.index(pc.is_null(table[col]), True).as_py()
            raise InputDataError(f"{parquet}: row {i} has no {col}")
    return table


def read_features(parquet: str, npz: str, key: str, num_rows: int | None = None) -> np.ndarray:
    """Feature array `key` of a parquet's npz, checked to have one row per parquet row."""
    if num_rows is None:
        num_rows = pq.ParquetFile(parquet).metadata.num_rows
    try:
        with np.load(npz) as archive:
            if key not in archive.files:
                raise InputDataError(f"{npz}: no array {key!r} (has {archive.files}); features of {parquet}")
            features = archive[key]
    except FileNotFoundError:
        raise InputDataError(f"{npz}: npz of {parquet} not found (its {key} features are needed)") from None
    if features.ndim != 2 or len(features) != num_rows:
        raise InputDataError(f"{npz}: {key} has shape {features.shape} but {parquet} has {num_rows} rows: "
                             "the npz rows must follow the parquet's, one per row")
    return features


def uids_absent_from(shard_uids: Iterable[str], metadata_uids: Iterable[str]) -> list[str]:
    """Sorted shard uids that no metadata row has (a shard from another pool, or a stale one)."""
    known = set(metadata_uids)
    return sorted({u for u in shard_uids if u not in known})


def shard_absent_report(shard_tables: dict[str, pa.Table], metadata_uids: Iterable[str]) -> dict:
    """{absent_from_metadata: count, per_shard: {shard: count}, examples}: successful shard samples
    whose uid is not in the metadata, which no metadata filter can select."""
    known = pa.array(sorted(set(metadata_uids)), pa.string())
    per_shard, examples = {}, []
    for shard, table in shard_tables.items():
        absent = table.filter(pc.invert(pc.is_in(table["uid"], value_set=known)))
        if absent.num_rows:
            per_shard[shard] = absent.num_rows
            examples += absent["uid"].to_pylist()[: 5 - len(examples)] if len(examples) < 5 else []
    return {"absent_from_metadata": int(sum(per_shard.values())), "per_shard": per_shard, "examples": examples}


_LOWER_HEX = np.zeros(256, bool)
_LOWER_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = True


def metadata_uid_pairs(uids: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """A metadata uid column -> u8,u8 pairs in row order. CommonPool uids are all 32 lowercase hex
    chars, so the column's data buffer is unhexlified in one call (several times faster than the
    digit arithmetic of modeflow.common.uids.uid_pairs, which handles every other case)."""
    import binascii

    from modeflow.common.uids import UID_DTYPE, uid_pairs

    arr = uids.combine_chunks() if isinstance(uids, pa.ChunkedArray) else uids
    if not isinstance(arr, pa.StringArray) or arr.null_count or len(arr) == 0:
        return uid_pairs(arr, where)
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    if offsets[-1] - offsets[0] != 32 * len(arr) or not (np.diff(offsets) == 32).all():
        return uid_pairs(arr, where)
    digits = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    if not _LOWER_HEX[digits].all():
        return uid_pairs(arr, where)  # names the bad uid
    words = np.frombuffer(binascii.unhexlify(digits.tobytes()), ">u8").reshape(-1, 2)
    out = np.empty(len(arr), UID_DTYPE)
    out["f0"], out["f1"] = words[:, 0], words[:, 1]
    return out


def pool_table(directory: str, *, duplicate_uids: str = "error") -> tuple[pa.Table, dict]:
    """The CommonPool's rows as the canonical pool table that the download step reads (`row`, `uid`,
    `url`, `caption` = the metadata's `text`), parquet after parquet in name order, as DataComp's
    download_upstream.py hands the metadata directory to img2dataset. uids must be 32 lowercase hex
    characters (an error names the file and row); repeated uids follow pool.duplicate_uids."""
    from modeflow.common.uids import UID_PATTERN
    from modeflow.pool.sources import _handle_duplicates

    pool = CommonPool.open(directory)
    parts = []
    offset = 0
    for parquet in pool.parquets:
        table = read_metadata(parquet, ["uid", "url", "text"], needed_by="the download (pool.datacomp.shards is null)")
        uids = table["uid"].cast(pa.string())
        bad = pc.invert(pc.match_substring_regex(uids, UID_PATTERN))
        if pc.any(bad).as_py():
            i = pc.index(bad, True).as_py()
            raise InputDataError(f"{parquet}: row {i}: uid {uids[i].as_py()!r} is not 32 lowercase hex characters")
        parts.append(pa.table({"row": pa.array(np.arange(offset, offset + table.num_rows), pa.int64()),
                               "uid": uids, "url": table["url"].cast(pa.string()),
                               "caption": table["text"].cast(pa.string())}))
        offset += table.num_rows
    table = pa.concat_tables(parts).combine_chunks()
    if duplicate_uids not in ("error", "drop"):
        raise ConfigError(f"pool.duplicate_uids must be 'error' or 'drop', not {duplicate_uids!r}")
    table, dropped = _handle_duplicates(table, directory, duplicate_uids, "url")
    return table, {"source": str(directory), "parquets": len(pool.parquets), "rows_read": offset,
                   "rows": table.num_rows, "duplicates_dropped": dropped, "uids_derived": False}


def metadata_index(pool: CommonPool) -> pa.Table:
    """(uid, part, row) of every metadata row: `part` the parquet's file name, `row` its position
    there (also its row in the parquet's npz)."""
    parts = []
    for parquet in pool.parquets:
        uids = read_metadata(parquet, ["uid"], needed_by="pool.source datacomp")["uid"].cast(pa.string())
        parts.append(pa.table({"uid": uids, "part": pa.array([Path(parquet).name] * len(uids), pa.string()),
                               "row": pa.array(np.arange(len(uids)), pa.int64())}))
    return pa.concat_tables(parts)
