"""Assignment of every embedding to its nearest fine center (L2 on normalised vectors) and, through
the fine->coarse map, to its expert: one embed chunk at a time, one batch in memory at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modeflow.cluster.kmeans import flat_index
from modeflow.cluster.model import ClusterModel
from modeflow.common.atomic import write_parquet
from modeflow.common.errors import InputDataError
from modeflow.common.vectors import normalize_rows

ASSIGN_BATCH = 1 << 16  # rows normalised and searched at a time: bounded memory, BLAS-sized batches


def assign(vectors: np.ndarray, model: ClusterModel, *, batch_size: int = ASSIGN_BATCH,
           source: str = "embeddings") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest fine center of every row (L2 on normalised vectors) -> (fine int32, expert int32,
    distance float32, the L2 distance, not squared). `vectors` may be an unnormalised mmap."""
    if vectors.ndim != 2 or vectors.shape[1] != model.fine_centers.shape[1]:
        raise InputDataError(f"{source}: shape {vectors.shape} does not match the cluster model's "
                             f"dim {model.fine_centers.shape[1]}")
    index = flat_index(model.fine_centers)
    n = len(vectors)
    fine = np.empty(n, dtype=np.int32)
    dist = np.empty(n, dtype=np.float32)
    normalized = np.empty((min(batch_size, n), vectors.shape[1]), np.float32)  # reused by every batch
    for lo in range(0, n, batch_size):
        batch = np.asarray(vectors[lo : lo + batch_size], dtype=np.float32)  # no copy when float32
        unit = normalize_rows(batch, normalized[: len(batch)], source=source, first_row=lo)
        d2, idx = index.search(unit, 1)
        fine[lo : lo + len(batch)] = idx[:, 0]
        np.sqrt(np.maximum(d2[:, 0], 0.0), out=dist[lo : lo + len(batch)])
    expert = model.fine_to_coarse[fine].astype(np.int32)
    return fine, expert, dist


def assign_chunk(npy: str | Path, uid_parquet: str | Path, model: ClusterModel,
                 out_parquet: str | Path) -> dict:
    """Assign one embed chunk -> parquet (uid, fine, expert, distance), in the embed rows' order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.load(npy, mmap_mode="r")
    uids = pq.read_table(uid_parquet, columns=["uid"]).column("uid")
    if len(uids) != len(vectors):
        raise InputDataError(f"{uid_parquet} has {len(uids)} rows but {npy} has {len(vectors)}: "
                             "the embed outputs are out of step; rerun the embed job")
    fine, expert, dist = assign(vectors, model, source=str(npy))
    write_parquet(out_parquet, pa.table({"uid": uids, "fine": fine, "expert": expert,
                                         "distance": dist}))
    return {"rows": len(fine), "experts": np.bincount(expert, minlength=model.num_experts).tolist()}
