"""Caption embeddings, MoDE's first step (docs/method.md §1): a text encoder (modeflow.embed.encoders)
run over the captions of shards.

Vectors are stored as the encoder returns them (no normalisation added here; MoDE normalises only
when clustering and assigning), as float32 .npy aligned row for row with a parquet of
(uid, shard, key).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from modeflow.common.atomic import save_npy, write_parquet
from modeflow.common.errors import ModeflowError
from modeflow.embed.encoders import TextEncoder
from modeflow.wds.reader import iter_captions
from modeflow.wds.shard_name import shard_of_tar

CHUNK_BATCHES = 16  # encode once this many batches of captions are read (see embed_shards)


def read_shard(tar: str | Path) -> tuple[str, list[str], list[str], list[str]]:
    """(shard name, keys, uids, captions) of one tar, in tar order."""
    keys: list[str] = []
    uids: list[str] = []
    captions: list[str] = []
    for key, uid, caption in iter_captions(str(tar)):
        keys.append(key)
        uids.append(uid)
        captions.append(caption)
    return shard_of_tar(tar), keys, uids, captions


def default_read_workers(encoder: TextEncoder, threads: int) -> int:
    """Reader processes for embed_shards: none when the encoder computes on the CPU (readers would
    only take its cores and cost a fork), else up to `threads` of them: a GPU encodes MiniLM ~3x
    faster than one process parses tars (bench/bench_embed.py --device cuda)."""
    return 0 if encoder.device == "cpu" else max(1, min(threads, 8))


@contextlib.contextmanager
def _shard_reader(tars: Sequence, workers: int) -> Iterator[Iterator[tuple]]:
    """read_shard over `tars` in order: in this process (workers=0), or in `workers` processes that
    read ahead while this one encodes. Parsing tars is pure-Python and GIL-bound (~5k samples/s per
    core), slower than a GPU encodes, so on a GPU it must run in parallel with the encoder."""
    if workers <= 0 or len(tars) <= 1 or "fork" not in mp.get_all_start_methods():
        yield map(read_shard, tars)
        return
    # fork, not spawn: spawn re-runs the caller's __main__ (a Snakemake script) in every worker.
    # The workers only parse tars; they never touch torch or CUDA (as in torch's own DataLoader).
    with mp.get_context("fork").Pool(min(workers, len(tars))) as pool:
        yield pool.imap(read_shard, tars)


def embed_shards(tars: Sequence[str | Path], out_npy: str | Path, out_parquet: str | Path,
                 encoder: TextEncoder, batch_size: int, *, read_workers: int = 0) -> dict:
    """Embed every caption of `tars` (in order) -> out_npy float32 (N, dim) and out_parquet
    (uid, shard, key), row i of one being row i of the other. Returns stats for the log.

    Captions are encoded in chunks of whole tars (>= CHUNK_BATCHES batches), so that with
    `read_workers` > 0 the next tars are read while a chunk is encoded. Chunks depend only on the
    tars' sizes, never on timing, so the output is the same on every run.
    """
    import pyarrow as pa
    from tqdm import tqdm

    start = time.perf_counter()
    columns: dict[str, list[str]] = {"uid": [], "shard": [], "key": []}
    captions: list[str] = []
    parts: list[np.ndarray] = []
    encoded = 0  # captions[:encoded] are in parts
    with _shard_reader(list(tars), read_workers) as shards, \
            tqdm(unit="caption", desc=f"embed {encoder.name}", file=sys.stderr) as bar:
        for name, keys, uids, caps in shards:
            columns["uid"] += uids
            columns["shard"] += [name] * len(keys)
            columns["key"] += keys
            captions += caps
            if len(captions) - encoded >= CHUNK_BATCHES * batch_size:
                parts.append(_encode_checked(encoder, captions[encoded:], batch_size))
                bar.update(len(captions) - encoded)
                encoded = len(captions)
        parts.append(_encode_checked(encoder, captions[encoded:], batch_size))
        bar.update(len(captions) - encoded)
    vectors = np.concatenate(parts)
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise ModeflowError(f"encoder {encoder.name} gave a non-finite vector for "
                            f"{columns['shard'][bad]}.tar sample {columns['key'][bad]!r} "
                            f"(caption {captions[bad][:80]!r})")
    table = pa.table({col: pa.array(values, pa.string()) for col, values in columns.items()})
    save_npy(out_npy, np.ascontiguousarray(vectors, dtype=np.float32))
    write_parquet(out_parquet, table)
    seconds = time.perf_counter() - start
    return {"rows": len(captions), "dim": encoder.dim, "shards": len(tars), "encoder": encoder.name,
            "seconds": round(seconds, 3), "rows_per_s": round(len(captions) / seconds, 1) if seconds else 0.0}


def _encode_checked(encoder: TextEncoder, captions: list[str], batch_size: int) -> np.ndarray:
    vectors = encoder.encode(captions, batch_size) if captions else np.zeros((0, encoder.dim), np.float32)
    if vectors.shape != (len(captions), encoder.dim):
        raise ModeflowError(f"encoder {encoder.name} returned shape {vectors.shape} for "
                            f"{len(captions)} captions of dim {encoder.dim}")
    return np.asarray(vectors, dtype=np.float32)


def embed_job(tars: Sequence[str | Path], out_npy: str | Path, out_parquet: str | Path, opts: dict,
              threads: int) -> dict:
    """One embed job: the embed section's encoder (`opts`) loaded and run over `tars` on `threads`
    cores (rule grow_embed). workflow/scripts/embed.py does the same inline and is left so: a
    changed script makes Snakemake rerun every finished job of its rule (its code trigger compares
    the script's mtime with the outputs'), and with the embed jobs the whole mixture."""
    import torch

    from modeflow.embed.encoders import load_text_encoder

    torch.set_num_threads(threads)
    encoder = load_text_encoder(opts["encoder"], opts["model"], checkpoint=opts["checkpoint"],
                                pooling=opts["pooling"], device=opts["device"], max_length=opts["max_length"])
    return embed_shards(tars, out_npy, out_parquet, encoder, batch_size=opts["batch_size"],
                        read_workers=default_read_workers(encoder, threads))
