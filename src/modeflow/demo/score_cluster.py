"""The demo pool's cluster scores: how well the experts agree with the demo's ground-truth domains
(scoring only, never used to decide anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.plots import png_figure
from modeflow.common.names import expert_name


def score_experts(assign_parquets: Sequence[str | Path], ground_truth: str | Path,
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


def plot_expert_scores(scores: Mapping, png_path) -> None:
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
