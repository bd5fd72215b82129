"""Per-query hits of every arm on every task: what the headline number averages, kept per test
sample so that two arms can be compared on the same resampled test samples (modeflow.ensemble.claims).

    classification: correct  (N,) bool, top-1 prediction == label; top-1 = its mean
                    labels   (N,) int, the samples' classes, for the mean per-class recall (a task
                             whose main metric it is: modeflow.evaluate.main_metric)
    retrieval:      text_queries  (T,) bool, the text's image ranks first among all images
                    image_queries (N',) bool, one of the image's texts ranks first (images with a text)
                    headline = mean_recall@1 = ½(mean text_queries + mean image_queries)

Saved by the combining step as `<dir>/<task>/<arm>.<key>.npy`. The query hits are what a bootstrap
resamples; `labels` travel with `correct` (the same indices), they are no query kind of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from modeflow.common.atomic import save_npy
from modeflow.common.errors import InputDataError
from modeflow.evaluate.main_metric import DEFAULT, MEAN_PER_CLASS_RECALL, canonical_metric
from modeflow.evaluate.metrics import NO_TEXT, retrieval_ranks

KEYS = {"classification": ("correct",), "retrieval": ("text_queries", "image_queries")}  # query hits
LABELS = "labels"  # a classification task's classes, beside `correct`


def sample_hits(kind: str, scores: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The per-query hits (KEYS[kind]; classification also its labels) of one arm's scores on one
    task, counted exactly as modeflow.evaluate.metrics counts top-1 and recall@1 (same ranks, same ties)."""
    if kind == "classification":
        labels = np.asarray(target).astype(np.int64)
        return {"correct": np.asarray(scores).argmax(axis=1) == labels, LABELS: labels}
    text_rank, image_rank = retrieval_ranks(scores, target)
    return {"text_queries": text_rank < 1, "image_queries": image_rank[image_rank < NO_TEXT] < 1}


def query_kinds(hits: Mapping[str, np.ndarray]) -> list[str]:
    """The keys of `hits` that are query hits (all but the labels)."""
    return [k for k in hits if k != LABELS]


def mean_per_class_recall(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` of the fraction of their samples that are correct:
    modeflow.evaluate.metrics.metrics_from_logits' value, computed the same way."""
    return float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))


def _metric(hits: Mapping[str, np.ndarray], main_metric: str | None) -> str | None:
    name = canonical_metric(main_metric) if main_metric else None
    if name == MEAN_PER_CLASS_RECALL and LABELS not in hits:
        raise ValueError("the mean per-class recall needs the per-sample labels, and these hits have none")
    if name is not None and name not in (DEFAULT["classification"], DEFAULT["retrieval"], MEAN_PER_CLASS_RECALL):
        raise ValueError(f"no per-sample form of main metric {main_metric!r}")
    return name


def headline_from_hits(hits: Mapping[str, np.ndarray], main_metric: str | None = None) -> float:
    """The task's headline number from its hits: its main metric (None: top-1, or mean_recall@1 =
    ½ of each direction); mean_per_class_recall needs the hits' labels."""
    if _metric(hits, main_metric) == MEAN_PER_CLASS_RECALL:
        return mean_per_class_recall(np.asarray(hits["correct"]), np.asarray(hits[LABELS]))
    return float(np.mean([np.mean(hits[k]) for k in query_kinds(hits)]))


def resampled_per_class_recall(correct: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(b,) mean per-class recall of each resample idx[r] (indices into the test samples): over the
    classes present in that resample, as on a test set that were the resample."""
    b, n = idx.shape
    classes, codes = np.unique(labels, return_inverse=True)
    k = len(classes)
    flat = (np.arange(b)[:, None] * k + codes.reshape(-1)[idx]).ravel()
    counts = np.bincount(flat, minlength=b * k).reshape(b, k)
    right = np.bincount(flat, weights=correct[idx].ravel().astype(np.float64), minlength=b * k).reshape(b, k)
    present = counts > 0
    recall = np.divide(right, counts, out=np.zeros_like(right), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def save_hits(out_dir: str | Path, hits: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> None:
    """{task: {arm: {key: hits}}} as <out_dir>/<task>/<arm>.<key>.npy (labels as int64, hits as bool)."""
    for task, arms in hits.items():
        for arm, arrays in arms.items():
            for key, value in arrays.items():
                dtype = np.int64 if key == LABELS else bool
                save_npy(Path(out_dir) / task / f"{arm}.{key}.npy", np.asarray(value, dtype=dtype))


def load_hits(out_dir: str | Path, kinds: Mapping[str, str]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """save_hits' files back, for the tasks of `kinds` ({task: kind}); labels where they were saved."""
    out = {}
    for task, kind in kinds.items():
        folder = Path(out_dir) / task
        arms = sorted({p.name.split(".")[0] for p in folder.glob("*.npy")})
        if not arms:
            raise InputDataError(f"{folder}: no per-sample hits saved for task {task!r}")
        keys = {arm: KEYS[kind] + ((LABELS,) if (folder / f"{arm}.{LABELS}.npy").exists() else ()) for arm in arms}
        out[task] = {arm: {key: np.load(folder / f"{arm}.{key}.npy") for key in keys[arm]} for arm in arms}
    return out
