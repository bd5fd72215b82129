"""DataComp's clip_score filter: the image–text cosine of a CLIP model per pool sample.

`score_chunk` scores one chunk of downloaded shards (rows aligned with the chunk's embed uid table,
so the subset step can join on uid); `clip_score_keep` turns the pool's scores into a keep mask by a
fixed threshold or by a fraction (DataComp's `--fraction f`: one global threshold at the top-f score).
"""

from __future__ import annotations

import io
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.wds.reader import IMAGE_EXTENSIONS, iter_samples
from modeflow.wds.shard_name import shard_of_tar


def _decode(data: bytes, where: str):
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises many types for bad bytes
        raise InputDataError(f"{where}: image cannot be decoded ({exc})") from None
    return image.convert("RGB")


def _chunk_samples(tars: Sequence[str]) -> Iterator[tuple[str, str, object, str]]:
    """(shard, key, PIL image, caption) for every sample of the chunk's tars, in tar order."""
    for tar in tars:
        shard = shard_of_tar(tar)
        for sample in iter_samples(str(tar), want=("txt",) + IMAGE_EXTENSIONS):
            key = sample["__key__"]
            where = f"{tar}: sample {key}"
            ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
            if ext is None or "txt" not in sample:
                raise InputDataError(f"{where}: needs an image and a .txt caption to be scored")
            yield shard, key, _decode(sample[ext], where), sample["txt"].decode("utf-8")


def score_chunk(tars: Sequence[str], uid_table: str, model, preprocess, tokenizer, *,
                batch_size: int = 256, device: str = "cpu") -> pa.Table:
    """Table {uid, clip_score} in the row order of `uid_table` (the chunk's embed parquet)."""
    import torch
    from tqdm import tqdm

    rows = pq.read_table(uid_table, columns=["uid", "shard", "key"])
    position = {(s, k): i for i, (s, k) in enumerate(zip(rows["shard"].to_pylist(), rows["key"].to_pylist()))}
    scores = np.full(rows.num_rows, np.nan, dtype=np.float32)
    model = model.to(device).eval()

    def flush(batch):
        images = torch.stack([preprocess(img) for _, img, _ in batch]).to(device)
        texts = tokenizer([cap for _, _, cap in batch]).to(device)
        with torch.no_grad():
            img = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
            txt = torch.nn.functional.normalize(model.encode_text(texts).float(), dim=-1)
        scores[[i for i, _, _ in batch]] = (img * txt).sum(-1).cpu().numpy()

    batch = []
    for shard, key, image, caption in tqdm(_chunk_samples(tars), total=rows.num_rows, desc="clip score",
                                           unit="sample", mininterval=5):
        i = position.get((shard, key))
        if i is None:
            raise InputDataError(f"{uid_table}: has no row for sample {key} of shard {shard}")
        batch.append((i, image, caption))
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        raise InputDataError(f"{uid_table}: {len(missing)} row(s) have no sample in {list(tars)}, "
                             f"e.g. uid {rows['uid'][int(missing[0])]}")
    return pa.table({"uid": rows["uid"], "clip_score": pa.array(scores)})


def clip_score_keep(scores: np.ndarray, *, threshold: float | None = None, fraction: float | None = None,
                    key: str = "filter.subsets.clip_score") -> tuple[np.ndarray, float]:
    """(keep mask, threshold used). Exactly one of threshold / fraction; fraction f keeps the top f
    of the pool by one global threshold (ties at the threshold are kept, as in DataComp)."""
    if (threshold is None) == (fraction is None):
        raise ConfigError(f"{key}: give exactly one of `threshold` or `fraction`")
    scores = np.asarray(scores, dtype=np.float32)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"{key}.fraction must lie in (0, 1], got {fraction}")
        if len(scores) == 0:
            return np.zeros(0, bool), float("nan")
        threshold = float(np.quantile(scores, 1 - fraction, method="higher"))
    return scores >= threshold, float(threshold)
