"""MoDE's two-level cluster model (docs/method.md §2; MetaCLIP `mode/`): fine k-means on a sample of
caption embeddings, then coarse k-means of the fine centers, one coarse cluster being one data
expert. Checks the cluster config, fits the model, and saves / loads its four files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from modeflow.common.atomic import save_npy, write_json
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.cluster.kmeans import BALANCE_SLACK, fit_kmeans, size_spread, use_gpu
from modeflow.cluster.sample import expected_sample_rows

MODEL_FILES = {
    "fine_centers": "fine_centers.npy",
    "coarse_centers": "coarse_centers.npy",
    "fine_to_coarse": "fine_to_coarse.npy",
    "params": "params.json",
}
COARSE_REDO = 10  # the coarse step clusters only m points: 10 restarts cost little, avoid merged blobs
# cluster.fine_to_coarse: each fine center's expert is its nearest coarse center (MoDE's code:
# prep_hrchy.py calls kmeans.predict on the fine centers after the balanced coarse fit), or the
# coarse fit's own capped (balanced) assignment
NEAREST, BALANCED_MAP = "nearest", "balanced"


# --- config ---------------------------------------------------------------------------------


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
    """Fine k-means (m) of the normalised sample, then coarse k-means (n) of the fine centers;
    each fine center then goes to its nearest coarse center (cluster.fine_to_coarse: nearest, MoDE's
    way) or keeps the balanced coarse fit's label (balanced)."""
    check_cluster_config(cluster_cfg, len(sample))
    spherical = cluster_cfg["metric"] == "spherical"
    balanced = bool(cluster_cfg["balanced"])
    start = time.perf_counter()
    fine_centers, fine_labels = fit_kmeans(sample, cluster_cfg["num_fine"],
                                           niter=cluster_cfg["fine_iterations"], seed=seed,
                                           spherical=spherical, balanced=balanced, slack=slack)
    coarse_centers, coarse_labels = fit_kmeans(fine_centers, cluster_cfg["num_experts"],
                                               niter=cluster_cfg["coarse_iterations"], seed=seed,
                                               spherical=spherical, balanced=balanced, slack=slack,
                                               nredo=COARSE_REDO)
    mapping = cluster_cfg.get("fine_to_coarse", NEAREST)
    fine_to_coarse = coarse_labels if mapping == BALANCED_MAP else nearest_center(fine_centers, coarse_centers)
    m, n = len(fine_centers), len(coarse_centers)
    fine_sizes = np.bincount(fine_labels, minlength=m)
    params = {
        "num_fine": m, "num_experts": n, "dim": int(sample.shape[1]), "seed": seed,
        "metric": cluster_cfg["metric"], "balanced": balanced, "fine_to_coarse": mapping,
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


def nearest_center(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of each point's nearest center (exact L2; ties to the lower index): MoDE's
    fine -> coarse map, whatever capacity the balanced fit imposed."""
    points = np.asarray(points, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    d2 = (points ** 2).sum(1)[:, None] - 2 * points @ centers.T + (centers ** 2).sum(1)[None, :]
    return d2.argmin(axis=1).astype(np.int64)


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
