"""Report items of the cluster stage: size bar charts and a 2-D projection coloured by expert."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.sample import chunk_shapes, gather_rows, sample_indices, split_by_chunk
from modeflow.common.names import expert_name
from modeflow.common.plots import png_figure


def plot_sizes(summary: Mapping, png_path) -> None:
    """Bar charts: samples per expert, and samples per fine cluster sorted (coloured by expert)."""
    with png_figure(png_path, (11, 4)) as fig:
        coarse, fine = fig.subplots(1, 2, width_ratios=[1, 2])
        names = list(summary["expert_sizes"])
        bars = coarse.bar(names, list(summary["expert_sizes"].values()), color="tab:blue")
        coarse.bar_label(bars)
        spread = summary["expert_spread"]
        coarse.set_title(f"samples per expert (cv {spread['cv']})")
        coarse.set_xlabel("expert")
        sizes = np.asarray(summary["fine_sizes"])
        order = np.argsort(-sizes, kind="stable")
        fine.bar(np.arange(len(sizes)), sizes[order], width=1.0, color="tab:gray")
        fine.set_title(f"samples per fine cluster, sorted (m={len(sizes)}, "
                       f"cv {summary['fine_spread']['cv']}, empty {summary['fine_spread']['empty']})")
        fine.set_xlabel("fine cluster (by size)")


def sample_experts(assign_parquets: Sequence[str | Path], rows: Sequence[int],
                   indices: np.ndarray) -> np.ndarray:
    """The expert column at global rows `indices`, reading one chunk's column at a time."""
    import pyarrow.parquet as pq

    out = [pq.read_table(path, columns=["expert"]).column("expert").to_numpy()[local]
           for path, local in zip(assign_parquets, split_by_chunk(indices, rows))]
    return np.concatenate(out) if out else np.empty(0, dtype=np.int32)


def plot_projection(npy_paths: Sequence[str | Path], assign_parquets: Sequence[str | Path],
                    png_path, *, num_experts: int, seed: int, max_points: int = 5000) -> None:
    """PCA of a seeded sample of normalised embeddings, coloured by expert."""
    from sklearn.decomposition import PCA

    rows = [r for r, _ in chunk_shapes(npy_paths)]
    idx = sample_indices(sum(rows), fraction=1.0, max_rows=max_points, seed=seed)
    x = gather_rows(npy_paths, idx)
    experts = sample_experts(assign_parquets, rows, idx)
    xy = PCA(n_components=2, random_state=seed).fit_transform(x) if len(x) >= 2 else np.zeros((len(x), 2))
    with png_figure(png_path, (6, 5)) as fig:
        ax = fig.subplots()
        from matplotlib import colormaps

        cmap = colormaps["tab10" if num_experts <= 10 else "tab20"]
        for e in range(num_experts):
            sel = experts == e
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, label=expert_name(e),
                       color=cmap(e % cmap.N))
        ax.set_title(f"caption embeddings, PCA of {len(x)} sampled rows")
        if num_experts <= 20:
            ax.legend(title="expert", markerscale=3, fontsize="small")
