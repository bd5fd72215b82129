"""Run health: what a run dropped or found empty, counted and named in one report item.

Each stage already records its counts (img2dataset's per-shard stats, the pool table's stats, a
CommonPool's pool index stats, the reshard's per-chunk counts and summary, the meta.json of each
model's training data); this module reads them
and lists every condition a user should know about before trusting the results: shards that came
out empty, images without captions, shard samples a CommonPool's metadata does not list, uids of
a subset missing from the pool, training data smaller than one batch. Nothing here changes a result.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Iterable, Mapping

from modeflow.train.data_size import smaller_than_batch


def _read(path: str | Path | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path else None


def collect_health(*, download_summary: str | Path | None, pool_stats: str | Path | None,
                   reshard_chunks: Iterable[str | Path], reshard_summary: str | Path,
                   training_data: Mapping[str, str | Path], global_batch: int,
                   pool_index_chunks: Iterable[str | Path] = ()) -> dict:
    """Warnings (stage, what, count, message) and the names behind them, from the stage outputs.

    training_data: model ("seed", "expert_00", "dense", ...) -> the meta.json of the resharded
    data it trains on. pool_index_chunks: a CommonPool's per-chunk pool index stats
    (pool/index/<chunk>.json), which count shard samples whose uid the metadata lacks.
    """
    warnings: list[dict] = []

    def warn(stage: str, what: str, count: int, message: str, items: list | None = None) -> None:
        warnings.append({"stage": stage, "what": what, "count": count, "message": message,
                         "items": items or []})

    download = _read(download_summary)
    empty_download = list(download.get("empty_shards", [])) if download else []
    if empty_download:
        reasons = ", ".join(f"{msg} ({n})" for msg, n in list(download["failure_reasons"].items())[:3])
        warn("download", "empty_shards", len(empty_download),
             f"{len(empty_download)} shard(s) with no downloaded sample: {', '.join(empty_download)}"
             + (f"; most frequent failures: {reasons}" if reasons else ""), empty_download)

    pool = _read(pool_stats) or {}
    if pool.get("images_without_caption"):
        warn("pool", "images_without_caption", pool["images_without_caption"],
             f"{pool['images_without_caption']} image(s) in the image folder have no caption row and "
             f"are not in the pool, e.g. {', '.join(pool.get('images_without_caption_examples', []))}",
             pool.get("images_without_caption_examples", []))
    if pool.get("duplicates_dropped"):
        warn("pool", "duplicates_dropped", pool["duplicates_dropped"],
             f"{pool['duplicates_dropped']} row(s) repeated an earlier uid and were dropped "
             "(pool.duplicate_uids: drop)")

    absent, examples = 0, []
    for path in sorted(map(Path, pool_index_chunks)):
        stats = _read(path)
        absent += stats["absent_from_metadata"]
        examples += stats["absent_examples"]
    if absent:
        warn("pool", "absent_from_metadata", absent,
             f"{absent} shard sample(s) have a uid the CommonPool metadata does not list (no metadata "
             f"filter selects them), e.g. {', '.join(examples[:5])}", examples[:5])

    empty_chunks = []
    for path in sorted(map(Path, reshard_chunks)):
        if _read(path)["pool_samples"] == 0:
            empty_chunks.append(path.stem)
    if empty_chunks:
        warn("reshard", "empty_chunks", len(empty_chunks),
             f"{len(empty_chunks)} chunk(s) of shards held no sample to reshard: {', '.join(empty_chunks)}",
             empty_chunks)

    reshard = _read(reshard_summary)
    if reshard.get("absent_uids"):
        warn("reshard", "absent_uids", reshard["absent_uids"],
             f"{reshard['absent_uids']} uid(s) of the subset are not in the downloaded pool")
    small = [message for name, meta_path in training_data.items()
             if (message := smaller_than_batch(name, _read(meta_path)["output_samples"], global_batch))]
    if small:
        warn("train", "smaller_than_batch", len(small), "; ".join(small), small)

    return {"warnings": warnings, "empty_shards": empty_download, "num_warnings": len(warnings)}


def health_html(health: Mapping) -> str:
    """The report item: one row per warning, or a line saying there is none."""
    if not health["warnings"]:
        return "<p>No empty shard, dropped row or undersized training data in this run.</p>\n"
    rows = "".join(
        f"<tr><td>{html.escape(w['stage'])}</td><td>{html.escape(w['what'])}</td>"
        f"<td>{w['count']}</td><td>{html.escape(w['message'])}</td></tr>\n"
        for w in health["warnings"])
    return ("<table>\n<tr><th>stage</th><th>what</th><th>count</th><th>detail</th></tr>\n"
            + rows + "</table>\n")
