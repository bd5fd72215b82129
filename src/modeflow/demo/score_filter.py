"""The demo pool's filter scores: per subset, the share of each noise kind it removes, scored
against the demo's ground truth (which no filter ever reads)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow.parquet as pq

from modeflow.common.plots import png_figure
from modeflow.common.uids import pairs_to_uids
from modeflow.common.subset_file import read_subset_file

# What DataComp's basic filter is meant to catch on the demo pool, and how well.
BASIC_TARGETS = ("non_english", "too_short", "tiny", "extreme_aspect")
MIN_REMOVED, MAX_CLEAN_REMOVED = 0.90, 0.05


def score_subsets(ground_truth: str, pool_uids: list[str], subset_paths: Mapping[str, str],
                  basic_names: list[str]) -> dict:
    """Per subset and noise kind (of the rows that reached the pool): share removed, and for clean
    rows share kept; duplicate groups collapsed to one copy. Acceptance checked for basic_filter."""
    gt = pq.read_table(ground_truth, columns=["uid", "noise", "duplicate_of"]).to_pandas()
    gt = gt.set_index("uid").loc[pool_uids]
    scores = {}
    for name, path in subset_paths.items():
        kept = set(pairs_to_uids(np.unique(read_subset_file(path))))
        in_subset = gt.index.isin(list(kept))
        per_kind = {}
        for kind, rows in gt.groupby("noise").groups.items():
            mask = gt.index.isin(rows)
            share_kept = float(in_subset[mask].mean())
            per_kind[kind] = {"rows": int(mask.sum()),
                              "share_kept" if kind == "clean" else "share_removed":
                                  share_kept if kind == "clean" else 1.0 - share_kept}
        per_kind["duplicate_groups"] = _duplicate_groups(gt, kept)
        entry = {"per_noise": per_kind}
        if name in basic_names:
            entry["acceptance"] = _acceptance(per_kind)
        scores[name] = entry
    return scores


def _duplicate_groups(gt, kept: set[str]) -> dict:
    """Groups of identical images (an original and its copies, duplicate_of = the original's uid)
    that the subset reduced to exactly one copy, or to none."""
    groups: dict[str, set[str]] = {}
    pool = set(gt.index)
    for uid, orig in gt.loc[gt["noise"] == "duplicate", "duplicate_of"].items():
        groups.setdefault(orig, set()).add(uid)
    sizes = [len(({o} & pool | dups) & kept) for o, dups in groups.items()]
    return {"groups": len(sizes), "share_one_kept": float(np.mean([s == 1 for s in sizes])) if sizes else None,
            "share_none_kept": float(np.mean([s == 0 for s in sizes])) if sizes else None}


def _acceptance(per_kind: dict) -> dict:
    checks = {kind: per_kind[kind]["share_removed"] >= MIN_REMOVED for kind in BASIC_TARGETS if kind in per_kind}
    if "clean" in per_kind:
        checks["clean"] = 1.0 - per_kind["clean"]["share_kept"] <= MAX_CLEAN_REMOVED
    return {"passed": all(checks.values()), "checks": checks,
            "rule": f"removes >= {MIN_REMOVED:.0%} of {', '.join(BASIC_TARGETS)}; <= {MAX_CLEAN_REMOVED:.0%} of clean"}


def plot_subset_scores(scores: dict, out_png: str) -> None:
    """Grouped bars: share removed per noise kind (share kept for clean), one group per subset."""
    kinds = sorted({k for s in scores.values() for k in s["per_noise"] if k != "duplicate_groups"})
    with png_figure(out_png, (max(6, 1.2 * len(kinds)), 4)) as fig:
        _scores_axes(fig.subplots(), scores, kinds)


def _scores_axes(ax, scores: dict, kinds: list[str]) -> None:
    width = 0.8 / max(len(scores), 1)
    for i, (name, s) in enumerate(scores.items()):
        vals = [s["per_noise"][k].get("share_kept", s["per_noise"][k].get("share_removed")) for k in kinds]
        ax.bar(np.arange(len(kinds)) + i * width, vals, width, label=name)
    ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, [k if k != "clean" else "clean (kept)" for k in kinds],
                  rotation=30, ha="right")
    ax.axhline(MIN_REMOVED, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share removed (clean: share kept)")
    ax.legend(fontsize="small")
