"""uid -> (shard, key) of the samples img2dataset wrote, from the shards' own parquets.

img2dataset writes `NNNNN.parquet` beside each `NNNNN.tar` with one row per input row (failures
included) and the `uid` column it was asked to save, so the successful rows say where each sample
lies without opening a tar or running an encoder: what resharding a subset needs (DataComp's
resharder.py reads every tar's json instead). The table has the columns of the embed stage's uid
table (uid, shard, key), so the reshard reads either.

For a CommonPool (`pool.source: datacomp`), chunk_index() also finds each sample's metadata row
(its parquet and row, hence its npz features), and counts the samples whose uid the metadata lacks
(their part and row are null: no metadata filter can select them and they have no precomputed
features, but they are in the shards, so per-chunk tables built from the tars still match). The
index is what the filters, the precomputed embeddings and the pooled reshard of the chunk read
(pool/index/<chunk>.parquet, its counts in pool/index/<chunk>.json).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeflow.common.errors import InputDataError

LOCATION_COLUMNS = ("uid", "shard", "key")


def shard_locations(shard_parquets: Sequence[str]) -> pa.Table:
    """(uid, shard, key) of every successful sample of the given shards, shard by shard in key
    order; a uid twice is an error naming both places."""
    parts = []
    for parquet in shard_parquets:
        shard = PurePosixPath(str(parquet)).name.removesuffix(".parquet")
        try:
            table = pq.read_table(parquet)
        except FileNotFoundError:
            raise InputDataError(f"{parquet}: shard parquet not found (shard {shard})") from None
        missing = [c for c in ("uid", "key", "status") if c not in table.column_names]
        if missing:
            raise InputDataError(f"{parquet}: no column(s) {missing}: not an img2dataset shard parquet written "
                                 "with save_additional_columns=['uid']")
        ok = table.filter(pc.equal(table["status"], "success")).select(["uid", "key"]).sort_by("key")
        if ok["uid"].null_count:
            raise InputDataError(f"{parquet}: a successful sample has no uid")
        parts.append(pa.table({"uid": ok["uid"].cast(pa.string()),
                               "shard": pa.array([shard] * ok.num_rows, pa.string()),
                               "key": ok["key"].cast(pa.string())}))
    out = pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in LOCATION_COLUMNS})
    counts = pc.value_counts(out["uid"])
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        uid = dup[0]["values"].as_py()
        rows = out.filter(pc.equal(out["uid"], uid))
        places = list(zip(rows["shard"].to_pylist(), rows["key"].to_pylist()))
        raise InputDataError(f"uid {uid} is written {len(places)} times in the shards: (shard, key) {places}")
    return out


INDEX_COLUMNS = (*LOCATION_COLUMNS, "part", "row")
_EXAMPLES = 5


def chunk_index(shard_parquets: Sequence[str], pool) -> tuple[pa.Table, dict]:
    """(uid, shard, key, part, row) of the chunk's successful samples, in shard and key order, with
    each one's row in the CommonPool `pool` (modeflow.pool.datacomp.CommonPool): part null for a
    uid the metadata lacks, those counted in the stats (absent_from_metadata, per shard, a few
    examples). A uid on two metadata rows is an error naming both files."""
    from modeflow.pool.datacomp import metadata_index

    located = shard_locations(shard_parquets)
    located = located.append_column("position", pa.array(range(located.num_rows), pa.int64()))
    meta = metadata_index(pool)
    joined = located.join(meta, keys="uid", join_type="left outer")
    if joined.num_rows != located.num_rows:  # a shard uid matched two metadata rows
        counts = pc.value_counts(joined["uid"])
        uid = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        rows = meta.filter(pc.equal(meta["uid"], uid))
        raise InputDataError(f"{pool.directory}: uid {uid} is on {rows.num_rows} metadata rows: (part, row) "
                             f"{list(zip(rows['part'].to_pylist(), rows['row'].to_pylist()))}")
    joined = joined.sort_by("position")
    absent = pc.is_null(joined["part"])
    missing = joined.filter(absent)
    per_shard = {}
    if missing.num_rows:
        counts = pc.value_counts(missing["shard"])
        per_shard = dict(sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())))
    index = joined.select(list(INDEX_COLUMNS))
    stats = {"shards": [PurePosixPath(str(p)).name.removesuffix(".parquet") for p in shard_parquets],
             "samples": int(located.num_rows), "in_metadata": int(located.num_rows - missing.num_rows),
             "absent_from_metadata": int(missing.num_rows), "absent_per_shard": per_shard,
             "absent_examples": missing["uid"].to_pylist()[:_EXAMPLES], "metadata": str(pool.directory)}
    return index, stats
