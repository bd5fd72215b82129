"""A demo pool written as img2dataset's webdataset download of it (`modeflow demo-pool OUT --shards`).

`write_demo_shards(OUT)` makes OUT/shards/ as img2dataset writes it when modeflow's download step
(modeflow.pool.download: parquet input, caption_col "caption", save_additional_columns ["uid"],
webdataset output) fetches OUT/urls.parquet through the demo's loopback server — without a
server or a download, reading each url's file under OUT/images/:

    NNNNN.tar         webdataset's TarWriter: `<key>.jpg`, `<key>.txt` (the caption) and `<key>.json`
                      (the sample's row) for each sample that decoded, in key order
    NNNNN.parquet     a row for every pool row of the shard, failed ones included: uid, caption, url,
                      key, status, error_message, width, height, original_width, original_height,
                      exif, sha256 (img2dataset's columns, types and order)
    NNNNN_stats.json  count, successes, failed_to_download, failed_to_resize, duration, start_time,
                      end_time, status_dict (successes as "success", failures by their message)

Shard i holds urls.parquet rows [i * shard_size, (i + 1) * shard_size), as img2dataset splits one
input file. Images go through img2dataset's own Resizer (default: 32 px, border, jpg quality 95:
the demo's download settings); keys are img2dataset's compute_key (shard id, then the row within
the shard, zero padded); a sample's uid is the pool's (urls.parquet, derive_uid(url, caption)). A
dead link (no file) fails as urllib's 404 does (failed_to_download, "HTTP Error 404: Not Found");
corrupt bytes fail in the Resizer (failed_to_resize, with its message). sha256 hashes the bytes
served, as img2dataset's compute_hash does, and exif is exifread's, as img2dataset extracts it.
Unlike a download the shards are deterministic: tar members carry a fixed mtime and the stats'
times are 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks online at import

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from modeflow.common.atomic import atomic_dir  # noqa: E402
from modeflow.common.errors import InputDataError  # noqa: E402

from .pool import URL_PREFIX  # noqa: E402

SHARD_DIGITS = 5  # img2dataset's oom_shard_count: 00000.tar, 00001.tar, ...
DEAD_LINK_ERROR = "HTTP Error 404: Not Found"  # str() of urllib's HTTPError, what img2dataset records
_MTIME = 0.0  # a float, as img2dataset's time.time(), so every member keeps its pax header
# img2dataset's shard parquet schema (downloader.py) after the input columns uid, caption, url
SCHEMA = pa.schema([
    ("uid", pa.string()), ("caption", pa.string()), ("url", pa.string()), ("key", pa.string()),
    ("status", pa.string()), ("error_message", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("original_width", pa.int32()), ("original_height", pa.int32()), ("exif", pa.string()), ("sha256", pa.string()),
])


@contextlib.contextmanager
def _quiet_libraries():
    """exifread warns "File format not recognized." for every PNG (it has no EXIF), and the
    Resizer's albumentations a DeprecationWarning for every image (img2dataset 1.47 passes
    PadIfNeeded `value`): neither is a problem, and a warning per image slows a run down."""
    logger = logging.getLogger("exifread")
    disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.disabled = disabled


def _exif(data: bytes) -> str | None:
    """img2dataset's exif column: exifread's tags as a json object, None when exifread fails."""
    import exifread

    try:
        tags = exifread.process_file(io.BytesIO(data), details=False)
        return json.dumps({k: str(v).strip() for k, v in tags.items() if v is not None})
    except Exception:  # noqa: BLE001 (img2dataset catches everything here too)
        return None


def _image_file(pool_dir: Path, url: str) -> Path:
    if not url.startswith(URL_PREFIX):
        raise InputDataError(f"{pool_dir / 'urls.parquet'}: url {url!r} is not a demo url ({URL_PREFIX}...)")
    return pool_dir / "images" / url[len(URL_PREFIX):]


def _sample(pool_dir: Path, row: dict, key: str, resizer) -> tuple[dict, bytes | None]:
    """The sample's row (json member and parquet row) and its encoded image, None when it failed."""
    meta = {**row, "key": key, "status": None, "error_message": None, "width": None, "height": None,
            "original_width": None, "original_height": None, "exif": None, "sha256": None}
    file = _image_file(pool_dir, row["url"])
    if not file.is_file():
        meta.update(status="failed_to_download", error_message=DEAD_LINK_ERROR)
        return meta, None
    data = file.read_bytes()
    image, width, height, original_width, original_height, error = resizer(io.BytesIO(data))
    if error is not None:
        meta.update(status="failed_to_resize", error_message=error)
        return meta, None
    meta.update(status="success", width=width, height=height, original_width=original_width,
                original_height=original_height, exif=_exif(data), sha256=hashlib.sha256(data).hexdigest())
    return meta, image


def _write_shard(directory: Path, shard_id: int, samples: list[tuple[dict, bytes | None]], encode_format: str) -> dict:
    import webdataset as wds

    name = f"{shard_id:0{SHARD_DIGITS}d}"
    with wds.TarWriter(str(directory / f"{name}.tar"), encoder=False, mtime=_MTIME) as sink:
        for meta, image in samples:
            if image is not None:
                sink.write({"__key__": meta["key"], encode_format: image, "txt": str(meta["caption"]).encode(),
                            "json": json.dumps(meta, indent=4).encode()})
    rows = [meta for meta, _ in samples]
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), directory / f"{name}.parquet")
    statuses = Counter(meta["status"] for meta in rows)
    stats = {"count": len(rows), "successes": statuses["success"],
             "failed_to_download": statuses["failed_to_download"], "failed_to_resize": statuses["failed_to_resize"],
             "duration": 0.0, "start_time": 0.0, "end_time": 0.0,
             "status_dict": dict(Counter(meta["error_message"] or meta["status"] for meta in rows))}
    (directory / f"{name}_stats.json").write_text(json.dumps(stats, indent=4))
    return stats


def write_demo_shards(pool_dir, out_dir=None, *, shard_size: int = 10000, image_size: int = 32,
                      resize_mode: str = "border", resize_only_if_bigger: bool = False,
                      encode_format: str = "jpg", encode_quality: int = 95) -> dict:
    """Write the demo pool in `pool_dir` as img2dataset webdataset shards into `out_dir` (default
    pool_dir/shards; replaced atomically). Returns the counts: shards, rows, successes,
    failed_to_download, failed_to_resize, and the directory."""
    from img2dataset.downloader import compute_key
    from img2dataset.resizer import Resizer

    if shard_size < 1:
        raise InputDataError(f"shard size {shard_size} < 1")
    pool_dir = Path(pool_dir)
    out_dir = pool_dir / "shards" if out_dir is None else Path(out_dir)
    table = pq.read_table(pool_dir / "urls.parquet", columns=["uid", "caption", "url"])
    rows = table.to_pylist()  # columns in img2dataset's order: save_additional_columns, caption, url
    resizer = Resizer(image_size=image_size, resize_mode=resize_mode, resize_only_if_bigger=resize_only_if_bigger,
                      encode_format=encode_format, encode_quality=encode_quality)
    oom_sample_per_shard = math.ceil(math.log10(shard_size))  # as img2dataset's downloader computes it
    totals = Counter()
    with atomic_dir(out_dir) as tmp, _quiet_libraries():
        shards = 0
        for shard_id, start in enumerate(range(0, len(rows), shard_size)):
            samples = [_sample(pool_dir, row, compute_key(i, shard_id, oom_sample_per_shard, SHARD_DIGITS), resizer)
                       for i, row in enumerate(rows[start:start + shard_size])]
            stats = _write_shard(tmp, shard_id, samples, encode_format)
            totals.update({k: stats[k] for k in ("count", "successes", "failed_to_download", "failed_to_resize")})
            shards += 1
    return {"path": str(out_dir), "shards": shards, "rows": totals["count"], "successes": totals["successes"],
            "failed_to_download": totals["failed_to_download"], "failed_to_resize": totals["failed_to_resize"],
            "shard_size": shard_size, "image_size": image_size, "resize_mode": resize_mode,
            "encode_format": encode_format}
