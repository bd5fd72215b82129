"""Report items of the cluster stage: size bar charts, a 2-D projection coloured by expert, and on
the demo pool the agreement of experts with the ground-truth domains (scoring only, never used to
decide anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.model import chunk_shapes, gather_rows, sample_indices, split_by_chunk
from modeflow.common.errors import InputDataError
from modeflow.pool.plan import expert_name
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


def demo_scores(assign_parquets: Sequence[str | Path], ground_truth: str | Path,
                num_experts: int) -> dict:
    """Purity and NMI of experts vs the demo's ground-truth domain over clean samples, with the
    expert x domain contingency table (clean samples, and all samples)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.metrics import normalized_mutual_info_score

    assigned = pa.concat_tables(pq.read_table(p, columns=["uid", "expert"]) for p in assign_parquets)
    truth = pq.read_table(ground_truth, columns=["uid", "domain", "noise"])
    joined = assigned.join(truth, "uid", join_type="left outer")
    if joined.column("domain").null_count:
        raise InputDataError(f"{ground_truth}: {joined.column('domain').null_count} assigned uids "
                             "have no ground truth row")
    expert = joined.column("expert").to_numpy()
    domain = np.asarray(joined.column("domain").to_pylist(), dtype=object)
    clean = np.asarray(joined.column("noise").to_pylist(), dtype=object) == "clean"
    domains = sorted(set(domain.tolist()))

    def table(mask):
        counts = np.zeros((num_experts, len(domains)), dtype=np.int64)
        np.add.at(counts, (expert[mask], np.searchsorted(domains, domain[mask])), 1)
        return counts

    clean_table = table(clean)
    n_clean = int(clean.sum())
    return {
        "clean_samples": n_clean, "samples": int(len(expert)), "domains": domains,
        "experts": [expert_name(e) for e in range(num_experts)],
        "purity": round(float(clean_table.max(axis=1).sum() / n_clean), 4) if n_clean else None,
        "nmi": round(float(normalized_mutual_info_score(domain[clean], expert[clean])), 4)
        if n_clean else None,
        "contingency_clean": clean_table.tolist(),
        "contingency_all": table(np.ones(len(expert), dtype=bool)).tolist(),
    }


def plot_demo_scores(scores: Mapping, png_path) -> None:
    """Heat map of the expert x domain table over clean samples, with purity and NMI."""
    counts = np.asarray(scores["contingency_clean"])
    with png_figure(png_path, (1.5 + 1.2 * len(scores["domains"]), 1.2 + 0.5 * len(scores["experts"]))) as fig:
        ax = fig.subplots()
        ax.imshow(counts, cmap="Blues", aspect="auto")
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > counts.max() / 2 else "black")
        ax.set_xticks(range(len(scores["domains"])), scores["domains"])
        ax.set_yticks(range(len(scores["experts"])), scores["experts"])
        ax.set_xlabel("ground-truth domain")
        ax.set_ylabel("expert")
        ax.set_title(f"clean samples: purity {scores['purity']}, NMI {scores['nmi']}")
