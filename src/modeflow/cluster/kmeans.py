"""k-means on top of faiss: plain (faiss.Kmeans) or balanced (our Lloyd loop with capped clusters).

MoDE's code clusters with *balanced* k-means (about N/K points per cluster); faiss has none, so
`balanced_assign` adds a capacity-constrained assignment step inside ordinary Lloyd iterations.
Everything is seeded; with a fixed faiss thread count the results are bit-for-bit repeatable.
"""

from __future__ import annotations

import math

import numpy as np

from modeflow.common.vectors import normalize_rows

BALANCE_SLACK = 0.1  # a cluster may hold up to 10% more than N/K: MoDE's balance is not strict either
CANDIDATES = 8  # nearest centers each point may propose to before the exhaustive fallback


def use_gpu() -> bool:
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def flat_index(centers: np.ndarray):
    """Exact L2 index over `centers`, on the GPU(s) when faiss has any."""
    import faiss

    index = faiss.IndexFlatL2(centers.shape[1])
    if use_gpu():
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    return index


def cluster_capacity(num_points: int, k: int, slack: float = BALANCE_SLACK) -> int:
    """Most points one cluster may take in balanced mode: ceil(N/K * (1 + slack))."""
    return math.ceil(round(num_points / k * (1.0 + slack), 6))  # round: 100 * 1.1 is 110.00000000000001


def balanced_assign(x: np.ndarray, centers: np.ndarray, capacity: int,
                    candidates: int = CANDIDATES) -> np.ndarray:
    """Label each row of `x` with a center, no center taking more than `capacity` points.

    Rounds of proposals, like deferred acceptance without take-backs: every unassigned point
    proposes to its next-nearest candidate center (from a faiss top-k search), and each center
    accepts its closest proposers up to its remaining capacity. Points whose `candidates` nearest
    centers all filled up then search again among the centers with room left, until none remain.
    This is a greedy approximation of the optimal capacitated assignment (which MoDE's code gets
    from an auction): chosen because it costs about one faiss top-k search per Lloyd iteration,
    like plain k-means, is vectorised, and is deterministic (stable sorts, ties by point index).
    Each fallback round places at least one point, so it ends as long as capacity * K >= N.
    Only the upper size is capped: a cluster may still end up small (the report shows the spread).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, k = len(x), len(centers)
    if capacity * k < n:
        raise ValueError(f"capacity {capacity} x {k} centers cannot hold {n} points")
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(k, capacity, dtype=np.int64)
    pending = np.arange(n)
    active = np.arange(k)  # centers searched in this pass
    while len(pending):
        t = min(candidates, len(active))
        queries = x if len(pending) == n else np.ascontiguousarray(x[pending])  # no copy at first
        dist, idx = flat_index(centers[active]).search(queries, t)
        idx = active[idx]
        for r in range(t):
            still = labels[pending] < 0
            if not still.any():
                break
            pts, cand, d = pending[still], idx[still, r], dist[still, r]
            _accept(labels, room, pts, cand, d)
        pending = pending[labels[pending] < 0]
        active = np.flatnonzero(room > 0)
    return labels


def _accept(labels: np.ndarray, room: np.ndarray, pts: np.ndarray, cand: np.ndarray,
            d: np.ndarray) -> None:
    """Each center keeps its closest proposers, up to its room; updates labels and room in place."""
    order = np.lexsort((pts, d, cand))  # by center, then distance, then point index for ties
    pts, cand = pts[order], cand[order]
    first = np.searchsorted(cand, cand, side="left")
    rank = np.arange(len(cand)) - first  # position among this center's proposers
    take = rank < room[cand]
    labels[pts[take]] = cand[take]
    np.subtract.at(room, cand[take], 1)


def _update_centers(x: np.ndarray, labels: np.ndarray, old: np.ndarray, spherical: bool) -> np.ndarray:
    """Means of the assigned points; an emptied cluster is re-seeded deterministically on the
    point farthest from its own center, so no expert silently disappears."""
    from scipy.sparse import csr_matrix

    k, d = old.shape
    n = len(x)
    sums = np.zeros((k, d), dtype=np.float64)
    for lo in range(0, n, 1 << 16):  # float32 sparse products per block, summed in float64
        part = labels[lo : lo + (1 << 16)]
        onehot = csr_matrix((np.ones(len(part), np.float32), (part, np.arange(len(part)))),
                            shape=(k, len(part)))
        sums += onehot @ x[lo : lo + (1 << 16)]
    counts = np.bincount(labels, minlength=k)
    centers = old.astype(np.float64).copy()
    filled = counts > 0
    centers[filled] = sums[filled] / counts[filled, None]
    empty = np.flatnonzero(~filled)
    if len(empty):
        far = np.argsort(-((x - old[labels]) ** 2).sum(axis=1), kind="stable")[: len(empty)]
        centers[empty] = x[far]
    centers = centers.astype(np.float32)
    if spherical:
        normalize_rows(centers, centers, allow_zero=True)
    return centers


def fit_kmeans(x: np.ndarray, k: int, *, niter: int, seed: int, spherical: bool = False,
               balanced: bool = False, slack: float = BALANCE_SLACK,
               nredo: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the rows of `x` -> (centers (k, d) float32, labels (N,) int64).

    Unbalanced: faiss.Kmeans on all rows (no internal subsampling: callers sample). Balanced:
    random init on k distinct rows, then `niter` Lloyd iterations whose assignment step is
    `balanced_assign`; the returned labels are the final balanced assignment.
    `nredo` > 1 keeps the run (seeds seed, seed+1, ...) with the smallest squared error: worth it
    where points are few (the coarse step clusters only m centers), as random init can merge blobs.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters of {n} points")
    best, best_sse = None, float("inf")
    for r in range(nredo):
        run = _fit_once(x, k, niter=niter, seed=seed + r, spherical=spherical, balanced=balanced,
                        slack=slack)
        if nredo == 1:
            return run
        sse = _sse(x, *run)
        if sse < best_sse:  # strict: ties keep the earliest seed
            best, best_sse = run, sse
    return best


def _sse(x: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    return float(((x - centers[labels]) ** 2).sum(dtype=np.float64))


def _fit_once(x, k, *, niter, seed, spherical, balanced, slack):
    import faiss

    n, d = x.shape
    if not balanced:
        km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=spherical, gpu=use_gpu(),
                          max_points_per_centroid=math.ceil(n / k) + 1, verbose=False)
        km.train(x)
        centers = np.ascontiguousarray(km.centroids, dtype=np.float32)
        _, labels = km.index.search(x, 1)
        return centers, labels[:, 0].astype(np.int64)
    rng = np.random.default_rng(seed)
    centers = x[np.sort(rng.choice(n, size=k, replace=False))].copy()
    capacity = cluster_capacity(n, k, slack)
    labels = balanced_assign(x, centers, capacity)
    for _ in range(niter):
        centers = _update_centers(x, labels, centers, spherical)
        new = balanced_assign(x, centers, capacity)
        if np.array_equal(new, labels):
            break
        labels = new
    return centers, labels


def size_spread(sizes: np.ndarray) -> dict:
    """min / max / mean and coefficient of variation of cluster sizes (for params and summaries)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    mean = float(sizes.mean()) if len(sizes) else 0.0
    return {"min": int(sizes.min()) if len(sizes) else 0, "max": int(sizes.max()) if len(sizes) else 0,
            "mean": round(mean, 3), "cv": round(float(sizes.std() / mean), 4) if mean else 0.0,
            "empty": int((sizes == 0).sum())}
