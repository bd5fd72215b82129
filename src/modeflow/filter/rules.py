"""The filter rules over per-sample attributes: DataComp's basic_filter (as in DataComp
`baselines/apply_filter.py`), and exact and near dedup.

Every rule returns a boolean keep-mask over the rows it is given, so the stats can say what removed
what; "first" in a duplicate group means first in pool order (`pool_order`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modeflow.common.vectors import normalize_rows


def basic_filter_masks(table: pa.Table, basic: dict) -> dict[str, np.ndarray]:
    """Keep-mask of each basic_filter rule on its own (config `filter.basic`)."""
    w = table["original_width"].to_numpy().astype(np.float64)
    h = table["original_height"].to_numpy().astype(np.float64)
    short, long = np.minimum(w, h), np.maximum(w, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(short > 0, long / np.where(short > 0, short, 1), np.inf)
    lang = np.asarray(table["language"].to_pylist(), dtype=object)
    return {
        "language": lang == basic["language"],
        "min_words": table["words"].to_numpy() >= basic["min_words"],
        "min_chars": table["chars"].to_numpy() >= basic["min_chars"],
        "min_image_side": short >= basic["min_image_side"],
        "max_aspect_ratio": aspect <= basic["max_aspect_ratio"],
    }


def pool_order(table: pa.Table) -> np.ndarray:
    """Row indices in pool order (shard, key): img2dataset's keys follow the input rows, while the
    tar order depends on download timing, so "first" means first by (shard, key)."""
    return np.lexsort((np.asarray(table["key"].to_pylist()), np.asarray(table["shard"].to_pylist())))


def dedup_exact_mask(table: pa.Table) -> np.ndarray:
    """Keep the first row (pool order) of each group of identical image sha256."""
    keep = np.zeros(len(table), dtype=bool)
    seen: set[str] = set()
    sha = table["sha256"].to_pylist()
    for i in pool_order(table):
        if sha[i] not in seen:
            seen.add(sha[i])
            keep[i] = True
    return keep


def dedup_near_mask(vectors: np.ndarray, order: np.ndarray, threshold: float,
                    batch: int = 1024) -> np.ndarray:
    """Greedy near-duplicate removal on caption embeddings: walk rows in `order`, keep a row unless
    an already kept row has cosine ≥ threshold with it. No two kept rows are near duplicates and
    the result depends only on `order`.

    Each batch of rows is matched (faiss exact inner product, top-1) against the rows kept so far,
    then against its own earlier kept rows, so memory stays O(batch²) however many captions repeat
    (templated web captions can make millions of pairs, which a range search would all return).
    """
    import faiss

    x = normalize_rows(np.ascontiguousarray(vectors, dtype=np.float32), source="dedup_near: caption embeddings")
    cut = float(threshold) - 1e-6  # float error must not split exact ties at the threshold
    index = faiss.IndexFlatIP(x.shape[1])
    keep = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), batch):
        rows = np.asarray(order[start:start + batch])
        xb = x[rows]
        free = index.search(xb, 1)[0][:, 0] < cut if index.ntotal else np.ones(len(rows), dtype=bool)
        sims = xb @ xb.T
        kept: list[int] = []
        for a in np.flatnonzero(free):
            if not kept or sims[a, kept].max() < cut:
                kept.append(a)
        keep[rows[kept]] = True
        index.add(xb[kept])
    return keep
