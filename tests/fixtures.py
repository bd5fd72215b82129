"""Synthetic pool shards as img2dataset writes them: the one writer the tests (and benchmarks) use.

What img2dataset's webdataset output holds per shard (img2dataset/writer.py WebDatasetSampleWriter,
logger.py write_stats): `<shard>.tar`, written by webdataset's TarWriter (a pax header before every
member, for its float mtimes), with `<key>.jpg`, `<key>.txt` (the caption) and `<key>.json` (the
sample's row) for each sample that downloaded; `<shard>.parquet`, a row for every input row, failed
ones included; `<shard>_stats.json`, the shard's counts.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from modeflow.common.uids import derive_uid

FAKE_JPG = b"\xff\xd8 not a decodable jpeg"  # the JPEG magic alone: for stages that never decode images
SUCCESS = "success"
# img2dataset's types for its own columns (downloader.py); other columns keep what pyarrow infers
_INT32_COLUMNS = ("width", "height", "original_width", "original_height")
_STRING_COLUMNS = ("uid", "caption", "url", "key", "status", "error_message", "exif", "sha256")


@dataclass(frozen=True)
class Sample:
    """One input row of a shard and what img2dataset makes of it."""

    key: str
    caption: str | bytes = "a photo"  # bytes: the .txt member exactly as given (e.g. not UTF-8)
    uid: str | None = None  # None: derive_uid(url, caption), as for a pool without a uid column
    jpg: bytes = FAKE_JPG
    status: str = SUCCESS  # another status: a failed row, only in the parquet and the stats
    txt: bool = True  # False: no .txt member, so readers take the json's caption
    url: str | None = None  # None: http://x/<key>
    row: dict = field(default_factory=dict)  # more columns (save_additional_columns), or values replacing the defaults

    def meta(self) -> dict:
        """The sample's row: its json member and its parquet row, img2dataset's columns in its order."""
        caption = self.caption if isinstance(self.caption, str) else self.caption.decode("utf-8", "replace")
        url = f"http://x/{self.key}" if self.url is None else self.url
        ok = self.status == SUCCESS
        return {"uid": derive_uid(url, caption) if self.uid is None else self.uid, "caption": caption,
                "url": url, "key": self.key, "status": self.status,
                "error_message": None if ok else f"{self.status} (synthetic)",
                **dict.fromkeys(_INT32_COLUMNS, 32 if ok else None), "exif": "{}" if ok else None,
                "sha256": hashlib.sha256(self.jpg).hexdigest() if ok else None, **self.row}


def jpeg(pixels: np.ndarray) -> bytes:
    """An (h, w, 3) uint8 image as JPEG bytes (PIL's default quality), for stages that decode images."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def write_shard(tar: str | Path, samples: Sequence[Sample], *, metadata: bool = False) -> Path:
    """`tar` with the samples that downloaded, in the given order; with `metadata`, also the shard's
    `.parquet` (every sample) and `_stats.json` beside it. Returns the tar's path."""
    tar = Path(tar)
    rows = [sample.meta() for sample in samples]
    with wds.TarWriter(str(tar), encoder=False) as sink:
        for sample, row in zip(samples, rows):
            if sample.status != SUCCESS:
                continue
            members = {"__key__": sample.key, "jpg": sample.jpg, "json": json.dumps(row, indent=4).encode()}
            if sample.txt:
                members["txt"] = sample.caption if isinstance(sample.caption, bytes) else sample.caption.encode()
            sink.write(members)
    if metadata:
        names = list(dict.fromkeys(name for row in rows for name in row)) or list(Sample("").meta())
        types = {**dict.fromkeys(_INT32_COLUMNS, pa.int32()), **dict.fromkeys(_STRING_COLUMNS, pa.string())}
        pq.write_table(pa.table({name: pa.array([row.get(name) for row in rows], types.get(name))
                                 for name in names}), tar.with_suffix(".parquet"))
        statuses = Counter(row["status"] for row in rows)
        stats = {"count": len(rows), "successes": statuses[SUCCESS],
                 "failed_to_download": statuses["failed_to_download"],
                 "failed_to_resize": statuses["failed_to_resize"],
                 "duration": 0.0, "start_time": 0.0, "end_time": 0.0,
                 # img2dataset counts a success as "success" and a failure by its error message
                 "status_dict": dict(Counter(row["error_message"] or SUCCESS for row in rows))}
        tar.with_name(f"{tar.stem}_stats.json").write_text(json.dumps(stats, indent=4))
    return tar


def write_shards(directory: str | Path, samples: Sequence[Sample], per_shard: int, *,
                 name: str = "{:05d}", metadata: bool = False) -> list[Path]:
    """The samples, in order, as shards of `per_shard` in `directory` (made if missing), named
    `name.format(shard index)`: 00000.tar, 00001.tar, ... Returns the tars' paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_shard(directory / f"{name.format(i)}.tar", samples[start:start + per_shard], metadata=metadata)
            for i, start in enumerate(range(0, len(samples), per_shard))]
