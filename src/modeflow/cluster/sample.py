"""Which embedding rows the fine k-means is fitted on: a uniform seeded sample over all chunks'
rows, L2-normalised (embeddings are stored unnormalised). Chunks are read with mmap, so only the
sampled rows are ever in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.vectors import normalize_rows


def expected_sample_rows(total_rows: int, fraction: float, max_rows: int) -> int:
    """How many rows the fit samples out of `total_rows` (at least one when there are any)."""
    if total_rows <= 0:
        return 0
    return int(min(max_rows, total_rows, max(1, round(fraction * total_rows))))


def chunk_shapes(npy_paths: Sequence[str | Path]) -> list[tuple[int, int]]:
    """(rows, dim) of every chunk, from the .npy headers; all chunks must share one float dim."""
    shapes = []
    for path in npy_paths:
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or arr.dtype.kind != "f":
            raise InputDataError(f"{path}: expected a 2-D float embedding array, got {arr.dtype} "
                                 f"{arr.shape}")
        if shapes and arr.shape[1] != shapes[0][1]:
            raise InputDataError(f"{path}: embedding dim {arr.shape[1]} differs from "
                                 f"{npy_paths[0]} ({shapes[0][1]})")
        shapes.append(arr.shape)
    return shapes


def sample_indices(total_rows: int, *, fraction: float, max_rows: int, seed: int) -> np.ndarray:
    """Sorted global row indices of a uniform seeded sample (all rows when it is all of them)."""
    size = expected_sample_rows(total_rows, fraction, max_rows)
    if size == total_rows:
        return np.arange(total_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total_rows, size=size, replace=False)).astype(np.int64)


def split_by_chunk(indices: np.ndarray, rows: Sequence[int]) -> list[np.ndarray]:
    """Global sorted row indices -> local indices per chunk."""
    bounds = np.concatenate([[0], np.cumsum(rows)])
    cut = np.searchsorted(indices, bounds)
    return [indices[cut[i] : cut[i + 1]] - bounds[i] for i in range(len(rows))]


def gather_rows(npy_paths: Sequence[str | Path], indices: np.ndarray) -> np.ndarray:
    """Rows `indices` (global, sorted) of the chunks' concatenation, normalised, float32."""
    shapes = chunk_shapes(npy_paths)
    out = np.empty((len(indices), shapes[0][1]), dtype=np.float32)
    pos = 0
    for path, local in zip(npy_paths, split_by_chunk(indices, [s[0] for s in shapes])):
        arr = np.load(path, mmap_mode="r")
        rows = out[pos : pos + len(local)]
        rows[:] = arr[local]  # mmap: only these rows' pages are read
        normalize_rows(rows, rows, source=str(path))
        pos += len(local)
    return out


def sample_embeddings(npy_paths: Sequence[str | Path], *, fraction: float, max_rows: int,
                      seed: int) -> np.ndarray:
    """Uniform seeded sample over all chunks' rows (fraction of them, at most `max_rows`),
    L2-normalised, float32 (rows in chunk order)."""
    total = sum(rows for rows, _ in chunk_shapes(npy_paths))
    return gather_rows(npy_paths, sample_indices(total, fraction=fraction, max_rows=max_rows, seed=seed))
