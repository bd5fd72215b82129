"""Zero-shot metrics from saved scores (pure numpy): clip_benchmark's classification accuracy and
retrieval recalls, and the one headline number per task that summaries show."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from modeflow.evaluate.main_metric import DEFAULT, canonical_metric

RECALL_KS = (1, 5, 10)


def metrics_from_logits(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 accuracy and mean per-class recall (over the classes present in `labels`)."""
    logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} do not match")
    correct = logits.argmax(axis=1) == labels
    classes = np.unique(labels)
    recalls = [correct[labels == c].mean() for c in classes]
    return {"top1": float(correct.mean()), "mean_per_class_recall": float(np.mean(recalls)),
            "num_samples": int(len(labels))}


def _ranks(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of column positive[r] in each row r of scores; ties go to the lower index,
    as a stable descending sort would order them."""
    rows = np.arange(len(scores))
    target = scores[rows, positive][:, None]
    cols = np.arange(scores.shape[1])[None, :]
    ahead = (scores > target) | ((scores == target) & (cols < positive[:, None]))
    return ahead.sum(axis=1)


NO_TEXT = np.iinfo(np.int64).max  # retrieval_ranks' image rank of an image no text describes


def retrieval_ranks(similarity: np.ndarray, text_to_image: np.ndarray,
                    chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the rank (0 = best) the retrieval recalls count: (rank of each text's image among
    all images (T,), best rank of any of an image's texts among all texts (N,), NO_TEXT for an
    image without a text)."""
    sim = np.asarray(similarity)
    t2i = np.asarray(text_to_image).astype(np.int64)
    n_img, n_txt = sim.shape
    if t2i.shape != (n_txt,) or not n_txt or t2i.min() < 0 or t2i.max() >= n_img:
        raise ValueError(f"text_to_image {t2i.shape} does not map {n_txt} texts to {n_img} images")
    text_rank = np.empty(n_txt, np.int64)  # rank of each text's image among all images
    image_rank = np.full(n_img, NO_TEXT)  # best rank of an image's texts
    for lo in range(0, n_txt, chunk):  # chunks: bounded memory on big sets
        j = np.arange(lo, min(lo + chunk, n_txt))
        text_rank[j] = _ranks(np.ascontiguousarray(sim[:, j].T), t2i[j])
        np.minimum.at(image_rank, t2i[j], _ranks(sim[t2i[j]], j))
    return text_rank, image_rank


def retrieval_metrics(similarity: np.ndarray, text_to_image: np.ndarray,
                      ks: Sequence[int] = RECALL_KS, chunk: int = 1024) -> dict:
    """clip_benchmark's recalls on an images x texts similarity; text j describes image
    text_to_image[j]. `image_retrieval_recall@k`: text -> image (is the text's image in its top k);
    `text_retrieval_recall@k`: image -> text (is any of the image's texts in its top k), over the
    images that have a text. `mean_recall@1` = ½(text R@1 + image R@1) (DataComp)."""
    text_rank, image_rank = retrieval_ranks(similarity, text_to_image, chunk)
    n_img, n_txt = len(image_rank), len(text_rank)
    has_text = image_rank < NO_TEXT
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float((text_rank < k).mean())
        out[f"text_retrieval_recall@{k}"] = float((image_rank[has_text] < k).mean())
    out["mean_recall@1"] = 0.5 * (out["image_retrieval_recall@1"] + out["text_retrieval_recall@1"])
    out["num_images"], out["num_texts"] = int(n_img), int(n_txt)
    return out


def headline(kind: str, metrics: dict, main_metric: str | None = None) -> float:
    """The number a summary shows per task: its main metric (modeflow.evaluate.main_metric; DataComp's
    name acc1 is top1); None: top-1 (classification), mean_recall@1 (retrieval)."""
    name = canonical_metric(main_metric) if main_metric else DEFAULT[kind]
    if name not in metrics:
        raise ValueError(f"a {kind} task's metrics have no {name!r} (they have {', '.join(metrics)})")
    return float(metrics[name])
