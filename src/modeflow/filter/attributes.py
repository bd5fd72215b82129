"""Per-sample attributes the DataComp filters read: language id, caption word and char counts,
image size and sha256, one table per chunk.

Attributes are computed once per chunk (`sample_attributes`) from img2dataset's shard parquets,
so no filter ever re-reads a tar; the rules applied to them live in modeflow.filter.rules.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeflow.common.errors import InputDataError
from modeflow.filter.langid import fasttext_languages

ATTRIBUTE_COLUMNS = ("uid", "shard", "key", "caption", "original_width", "original_height", "sha256",
                     "language", "language_score", "words", "chars")
_SHARD_COLUMNS = ["uid", "key", "caption", "status", "original_width", "original_height", "sha256"]


def detect_languages(captions: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Top-1 language code and score per caption, as DataComp's basic_filter runs fastText lid.176:
    the raw caption with newlines replaced, no other normalisation (modeflow.filter.langid)."""
    langs, scores = fasttext_languages(captions)
    return list(langs), scores


def count_words(captions: Iterable[str]) -> np.ndarray:
    """Whitespace-separated words, as DataComp counts them."""
    return np.array([len(c.split()) for c in captions], dtype=np.int32)


def _read_shard_successes(parquet: str, shard: str) -> pa.Table:
    try:
        table = pq.read_table(parquet)
    except FileNotFoundError:
        raise InputDataError(f"{parquet}: shard parquet not found (shard {shard})") from None
    missing = [c for c in _SHARD_COLUMNS if c not in table.column_names]
    if missing:
        raise InputDataError(f"{parquet}: missing column(s) {missing} (expected img2dataset's parquet)")
    table = table.select(_SHARD_COLUMNS).filter(pc.equal(table["status"], "success"))
    for col in ("caption", "original_width", "original_height", "sha256"):
        if table[col].null_count:
            bad = table.filter(pc.is_null(table[col]))["uid"][0].as_py()
            raise InputDataError(f"{parquet}: successful sample uid={bad} has no {col}")
    return table.drop_columns(["status"]).append_column("shard", pa.array([shard] * len(table), pa.string()))


def sample_attributes(shard_parquets: Sequence[str], embed_uid_parquet: str) -> pa.Table:
    """Attributes of a chunk's successfully downloaded samples, row for row in the order of the
    chunk's embedding table (uid, shard, key): ATTRIBUTE_COLUMNS.

    The successes of each shard's parquet must be exactly the samples embedded from its tar;
    anything else means the parquet and the tar disagree, and guessing would drop or invent data.
    """
    embedded = pq.read_table(embed_uid_parquet, columns=["uid", "shard", "key"])
    parts = []
    for parquet in shard_parquets:
        shard = PurePosixPath(str(parquet)).name.removesuffix(".parquet")
        ok = _read_shard_successes(str(parquet), shard)
        in_tar = embedded.filter(pc.equal(embedded["shard"], shard))
        if sorted(ok["uid"].to_pylist()) != sorted(in_tar["uid"].to_pylist()):
            extra = set(ok["uid"].to_pylist()) ^ set(in_tar["uid"].to_pylist())
            raise InputDataError(
                f"shard {shard}: {parquet} lists {len(ok)} successful samples but its tar has "
                f"{len(in_tar)} (embedded in {embed_uid_parquet}); {len(extra)} uid(s) differ, "
                f"e.g. {sorted(extra)[:3]}")
        parts.append(ok)
    shard_names = {PurePosixPath(str(p)).name.removesuffix(".parquet") for p in shard_parquets}
    stray = set(embedded["shard"].to_pylist()) - shard_names
    if stray:
        raise InputDataError(f"{embed_uid_parquet}: rows of shard(s) {sorted(stray)} but no parquet given for them")
    table = pa.concat_tables(parts) if parts else None
    if table is None or len(table) == 0:
        return _attribute_table([], [], [], [], [], [], [])
    # Reorder to the embedding rows: join on (shard, key), which img2dataset makes unique.
    pos = {(s, k): i for i, (s, k) in enumerate(zip(table["shard"].to_pylist(), table["key"].to_pylist()))}
    try:
        order = [pos[(s, k)] for s, k in zip(embedded["shard"].to_pylist(), embedded["key"].to_pylist())]
    except KeyError as exc:
        raise InputDataError(f"{embed_uid_parquet}: (shard, key) {exc.args[0]} is not a successful row of "
                             "that shard's parquet") from None
    table = table.take(pa.array(order, pa.int64()))
    if table["uid"].to_pylist() != embedded["uid"].to_pylist():
        raise InputDataError(f"{embed_uid_parquet}: uid of some (shard, key) differs from its shard parquet")
    return _attribute_table(table["uid"].to_pylist(), table["shard"].to_pylist(), table["key"].to_pylist(),
                            table["caption"].to_pylist(), table["original_width"].to_pylist(),
                            table["original_height"].to_pylist(),
                            table["sha256"].to_pylist())


def _attribute_table(uids, shards, keys, captions, widths, heights, sha256) -> pa.Table:
    langs, scores = detect_languages(captions)
    return pa.table({
        "uid": pa.array(uids, pa.string()),
        "shard": pa.array(shards, pa.string()),
        "key": pa.array(keys, pa.string()),
        "caption": pa.array(captions, pa.string()),
        "original_width": pa.array(widths, pa.int32()),
        "original_height": pa.array(heights, pa.int32()),
        "sha256": pa.array(sha256, pa.string()),
        "language": pa.array(langs, pa.string()),
        "language_score": pa.array(scores, pa.float32()),
        "words": pa.array(count_words(captions), pa.int32()),
        "chars": pa.array([len(c) for c in captions], pa.int32()),
    })
