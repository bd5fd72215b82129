"""MoDE's two-level clustering (MODE.md §2-3): fine k-means on a sample of caption embeddings,
coarse k-means of the fine centers (one coarse cluster = one data expert), then every sample is
assigned to its nearest fine center and, through the fine->coarse map, to its expert.

Embeddings are stored unnormalised per chunk; they are L2-normalised here, when sampling and when
assigning. Chunks are read with mmap, so only the sampled rows (or one batch) are ever in memory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.atomic import save_npy, write_json, write_parquet
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.cluster.kmeans import BALANCE_SLACK, fit_kmeans, flat_index, size_spread, use_gpu
from modeflow.pool.plan import expert_name

MODEL_FILES = {
    "fine_centers": "fine_centers.npy",
    "coarse_centers": "coarse_centers.npy",
    "fine_to_coarse": "fine_to_coarse.npy",
    "params": "params.json",
}
COARSE_REDO = 10  # the coarse step clusters only m points: 10 restarts cost little, avoid merged blobs
ASSIGN_BATCH = 1 << 16  # rows normalised and searched at a time: bounded memory, BLAS-sized batches


# --- config ---------------------------------------------------------------------------------


def expected_sample_rows(total_rows: int, fraction: float, max_rows: int) -> int:
    """How many rows the fit samples out of `total_rows` (at least one when there are any)."""
    if total_rows <= 0:
        return 0
    return int(min(max_rows, total_rows, max(1, round(fraction * total_rows))))


def check_cluster_config(cluster_cfg: Mapping, num_rows: int | None) -> None:
    """Fail before any work when the cluster counts cannot be met. `num_rows` is the number of
    embeddings available (None when unknown at DAG-build time: only n vs m is checked)."""
    n, m = cluster_cfg["num_experts"], cluster_cfg["num_fine"]
    if n > m:
        raise ConfigError(
            f"cluster.num_experts ({n}) is larger than cluster.num_fine ({m}): each expert is a "
            "group of fine clusters, so raise cluster.num_fine or lower cluster.num_experts"
        )
    if num_rows is None:
        return
    rows = expected_sample_rows(num_rows, cluster_cfg["sample_fraction"], cluster_cfg["sample_max"])
    if m > rows:
        raise ConfigError(
            f"cluster.num_fine ({m}) is larger than the {rows} embeddings sampled to fit it "
            f"({num_rows} rows, cluster.sample_fraction={cluster_cfg['sample_fraction']}, "
            f"cluster.sample_max={cluster_cfg['sample_max']}): lower cluster.num_fine or sample more"
        )


# --- reading and sampling embeddings ---------------------------------------------------------


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


def _check_norms(norms: np.ndarray, source: str, first_row: int) -> None:
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + first_row
        raise InputDataError(f"{source}: row {row} is a zero or non-finite embedding")


def normalize_rows(x: np.ndarray, source: str = "embeddings", first_row: int = 0) -> np.ndarray:
    """L2-normalise float32 rows in place; a zero or non-finite row is bad input, not a NaN."""
    norms = np.linalg.norm(x, axis=1)
    _check_norms(norms, source, first_row)
    x /= norms[:, None]
    return x


def normalized_into(x: np.ndarray, out: np.ndarray, source: str = "embeddings", first_row: int = 0) -> np.ndarray:
    """float32 rows `x` L2-normalised into `out` (same shape): the values normalize_rows gives
    (np.linalg.norm's own arithmetic), but no fresh memory. A new 100 MB batch and norm's
    temporary per batch cost page faults worth ~15% of assign's time."""
    np.multiply(x, x, out=out)
    norms = np.sqrt(np.add.reduce(out, axis=1))
    _check_norms(norms, source, first_row)
    return np.divide(x, norms[:, None], out=out)


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
        out[pos : pos + len(local)] = arr[local]  # mmap: only these rows' pages are read
        normalize_rows(out[pos : pos + len(local)], str(path))
        pos += len(local)
    return out


def sample_embeddings(npy_paths: Sequence[str | Path], *, fraction: float, max_rows: int,
                      seed: int) -> np.ndarray:
    """Uniform seeded sample over all chunks' rows (fraction of them, at most `max_rows`),
    L2-normalised, float32 (rows in chunk order)."""
    total = sum(rows for rows, _ in chunk_shapes(npy_paths))
    return gather_rows(npy_paths, sample_indices(total, fraction=fraction, max_rows=max_rows, seed=seed))


# --- the model ------------------------------------------------------------------------------


@dataclass
class ClusterModel:
    fine_centers: np.ndarray  # (m, d) float32
    coarse_centers: np.ndarray  # (n, d) float32
    fine_to_coarse: np.ndarray  # (m,) int64, values in [0, n)
    params: dict = field(default_factory=dict)

    @property
    def num_fine(self) -> int:
        return len(self.fine_centers)

    @property
    def num_experts(self) -> int:
        return len(self.coarse_centers)


def fit_cluster_model(sample: np.ndarray, cluster_cfg: Mapping, seed: int,
                      slack: float = BALANCE_SLACK) -> ClusterModel:
    """Fine k-means (m) of the normalised sample, then coarse k-means (n) of the fine centers."""
    check_cluster_config(cluster_cfg, len(sample))
    spherical = cluster_cfg["metric"] == "spherical"
    balanced = bool(cluster_cfg["balanced"])
    start = time.perf_counter()
    fine_centers, fine_labels = fit_kmeans(sample, cluster_cfg["num_fine"],
                                           niter=cluster_cfg["fine_iterations"], seed=seed,
                                           spherical=spherical, balanced=balanced, slack=slack)
    coarse_centers, fine_to_coarse = fit_kmeans(fine_centers, cluster_cfg["num_experts"],
                                                niter=cluster_cfg["coarse_iterations"], seed=seed,
                                                spherical=spherical, balanced=balanced, slack=slack,
                                                nredo=COARSE_REDO)
    m, n = len(fine_centers), len(coarse_centers)
    fine_sizes = np.bincount(fine_labels, minlength=m)
    params = {
        "num_fine": m, "num_experts": n, "dim": int(sample.shape[1]), "seed": seed,
        "metric": cluster_cfg["metric"], "balanced": balanced,
        "balance_slack": slack if balanced else None,
        "fine_iterations": cluster_cfg["fine_iterations"],
        "coarse_iterations": cluster_cfg["coarse_iterations"], "coarse_redo": COARSE_REDO,
        "sample_rows": int(len(sample)),
        "fine_sizes": size_spread(fine_sizes),  # sample points per fine cluster
        "coarse_sizes": size_spread(np.bincount(fine_to_coarse[fine_labels], minlength=n)),
        "coarse_fine_counts": size_spread(np.bincount(fine_to_coarse, minlength=n)),
        "gpu": use_gpu(), "fit_seconds": round(time.perf_counter() - start, 3),
    }
    return ClusterModel(fine_centers, coarse_centers, fine_to_coarse.astype(np.int64), params)


def model_paths(where: str | Path | Mapping) -> dict[str, Path]:
    """The four model files: from a directory, or a mapping with MODEL_FILES' keys."""
    if isinstance(where, Mapping):
        return {key: Path(where[key]) for key in MODEL_FILES}
    return {key: Path(where) / name for key, name in MODEL_FILES.items()}


def save_cluster_model(model: ClusterModel, where: str | Path | Mapping) -> None:
    paths = model_paths(where)
    save_npy(paths["fine_centers"], np.ascontiguousarray(model.fine_centers, dtype=np.float32))
    save_npy(paths["coarse_centers"], np.ascontiguousarray(model.coarse_centers, dtype=np.float32))
    save_npy(paths["fine_to_coarse"], model.fine_to_coarse.astype(np.int64))
    write_json(paths["params"], model.params)


def load_cluster_model(where: str | Path | Mapping) -> ClusterModel:
    """Load and cross-check the four files (shapes, dims, map range)."""
    paths = model_paths(where)
    try:
        fine = np.load(paths["fine_centers"])
        coarse = np.load(paths["coarse_centers"])
        mapping = np.load(paths["fine_to_coarse"])
        params = json.loads(paths["params"].read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the cluster model: {exc}") from None
    if fine.ndim != 2 or coarse.ndim != 2 or fine.shape[1] != coarse.shape[1]:
        raise InputDataError(f"{paths['fine_centers']} {fine.shape} and {paths['coarse_centers']} "
                             f"{coarse.shape} must be (m, d) and (n, d) arrays of the same dim")
    if mapping.shape != (len(fine),) or mapping.dtype.kind not in "iu" or (
            len(mapping) and (mapping.min() < 0 or mapping.max() >= len(coarse))):
        raise InputDataError(f"{paths['fine_to_coarse']}: expected {len(fine)} ints in "
                             f"[0, {len(coarse)}), got {mapping.dtype} {mapping.shape}")
    return ClusterModel(fine.astype(np.float32, copy=False), coarse.astype(np.float32, copy=False),
                        mapping.astype(np.int64, copy=False), params)


# --- assignment -----------------------------------------------------------------------------


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
        d2, idx = index.search(normalized_into(batch, normalized[: len(batch)], source, lo), 1)
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


# --- summary --------------------------------------------------------------------------------


def summarize_assignments(parquets: Sequence[str | Path], num_fine: int, num_experts: int) -> dict:
    """Per fine cluster and per expert counts over all chunks, with their spread."""
    import pyarrow.parquet as pq

    fine_sizes = np.zeros(num_fine, dtype=np.int64)
    expert_sizes = np.zeros(num_experts, dtype=np.int64)
    dist_sum = 0.0
    for path in parquets:
        table = pq.read_table(path, columns=["fine", "expert", "distance"])
        fine_sizes += _counts(table.column("fine").to_numpy(), num_fine, path, "fine")
        expert_sizes += _counts(table.column("expert").to_numpy(), num_experts, path, "expert")
        dist_sum += float(table.column("distance").to_numpy().astype(np.float64).sum())
    rows = int(expert_sizes.sum())
    return {
        "rows": rows, "chunks": len(parquets), "num_fine": num_fine, "num_experts": num_experts,
        "expert_sizes": {expert_name(i): int(s) for i, s in enumerate(expert_sizes)},
        "fine_sizes": fine_sizes.tolist(),
        "expert_spread": size_spread(expert_sizes), "fine_spread": size_spread(fine_sizes),
        "empty_experts": [expert_name(i) for i in np.flatnonzero(expert_sizes == 0)],
        "mean_distance": round(dist_sum / rows, 5) if rows else None,
    }


def _counts(values: np.ndarray, size: int, path, column: str) -> np.ndarray:
    if len(values) and (values.min() < 0 or values.max() >= size):
        raise InputDataError(f"{path}: column {column!r} has values outside [0, {size}): "
                             "it was assigned with another cluster model; rerun the assign jobs")
    return np.bincount(values, minlength=size)


def check_empty_experts(summary: Mapping, policy: str) -> None:
    """`cluster.empty_expert: error` stops the run when an expert got no sample at all."""
    if policy == "error" and summary["empty_experts"]:
        raise InputDataError(
            f"expert(s) {', '.join(summary['empty_experts'])} got no samples out of "
            f"{summary['rows']}: use fewer experts (cluster.num_experts) or set "
            "cluster.empty_expert: allow to keep them empty"
        )
