"""Expert and fine-cluster sizes over all assigned chunks, and the policy on experts left empty."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.kmeans import size_spread
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_name


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
