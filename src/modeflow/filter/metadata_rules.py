"""DataComp's baselines as keep-masks over CommonPool metadata (`baselines/apply_filter.py`), vectorised
over whole columns: the parquet's `text`, sizes and precomputed CLIP scores, and the npz's L/14 image
features. Where a rule needs a language or a WordNet lookup it is computed once per distinct caption
(modeflow.filter.langid, modeflow.filter.wordnet); everything else is numpy / pyarrow.

Rules, each as DataComp applies it:
- clip_score: score column of `arch` (b32 | l14) >= threshold; a fraction f becomes the threshold
  `-np.sort(-scores)[int(len(scores) * f)]` over the whole pool (get_threshold), so f keeps the top
  int(N·f) + 1 rows plus ties. (modeflow's seed-scorer clip_score keeps ~f·N: np.quantile(1 - f).)
- laion2b: B/32 score >= 0.28 and CLD3 says English.
- basic_filter: fastText English, > 2 words (str.split), > 5 characters, min side >= 200,
  max/min side <= 3 (the thresholds of `filter.basic`, whose defaults are DataComp's).
- text_based: fastText English and a word whose first WordNet synset is in the ImageNet-21k list.
- image_based: caption filter (fastText English, > 1 fastText tokens, > 5 characters), then the L/14
  image feature's nearest pool centroid (largest inner product, DataComp's argmax of an einsum) is
  one of the centroids nearest to some ImageNet-1k training image feature.
- image_based ∩ clip_score: the same, on the rows that pass clip_score first.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from modeflow.common.errors import ConfigError

SCORE_COLUMNS = {"b32": "clip_b32_similarity_score", "l14": "clip_l14_similarity_score"}
LAION2B_THRESHOLD = 0.28  # apply_filter: laion2b = clip_score b32 at 0.28 with gcld3's English
ENGLISH = "en"
_FASTTEXT_TOKEN = re.compile(r"[^ \n\r\t\v\f\x00]+")


def score_column(arch: str, key: str = "arch") -> str:
    if arch not in SCORE_COLUMNS:
        raise ConfigError(f"{key}: {arch!r} is not one of {sorted(SCORE_COLUMNS)}")
    return SCORE_COLUMNS[arch]


def datacomp_threshold(scores: np.ndarray, fraction: float, key: str = "fraction") -> float:
    """DataComp's get_threshold: the score at position int(N·fraction) of the pool's scores sorted
    from high to low (NaN last). fraction 1, where DataComp indexes past the end, keeps every scored
    row (threshold = the lowest score)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"{key} must lie in (0, 1], got {fraction}")
    scores = np.asarray(scores, dtype=np.float64)
    n = int(len(scores) * fraction)
    valid = scores[~np.isnan(scores)]
    if len(valid) == 0:
        return float("nan")
    if n >= len(valid):
        return float(valid.min()) if n >= len(scores) else float("nan")
    # n-th largest without a full sort: position len - 1 - n of the ascending order
    return float(np.partition(valid, len(valid) - 1 - n)[len(valid) - 1 - n])


def threshold_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """scores >= threshold (a NaN score is never kept, as in pandas)."""
    return np.asarray(scores, dtype=np.float64) >= threshold


def english_mask(languages: Sequence[str]) -> np.ndarray:
    return np.asarray(languages, dtype=object) == ENGLISH


def laion2b_mask(b32_scores: np.ndarray, cld3_languages: Sequence[str]) -> np.ndarray:
    return threshold_mask(b32_scores, LAION2B_THRESHOLD) & english_mask(cld3_languages)


def word_counts(texts: Sequence[str]) -> np.ndarray:
    """len(text.split()) per text: the word count of basic_filter."""
    return np.fromiter((len(t.split()) for t in texts), np.int64, len(texts))


def char_counts(texts) -> np.ndarray:
    """len(text) (code points) per text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.string())
    return pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)


def fasttext_token_counts(texts: Sequence[str]) -> np.ndarray:
    """len(fasttext.tokenize(text)) per text, which image_based's caption filter counts: fastText
    splits on the ASCII separators ' \\n\\r\\t\\v\\f\\0' and yields an end-of-sentence token `</s>`
    for every newline (Dictionary::readWord)."""
    return np.fromiter((len(_FASTTEXT_TOKEN.findall(t)) + t.count("\n") for t in texts), np.int64, len(texts))


def basic_filter_mask(texts, widths, heights, languages, basic: dict) -> dict[str, np.ndarray]:
    """Keep-mask of each basic_filter rule on its own, over metadata columns (thresholds:
    config `filter.basic`, DataComp's by default: en, 3 words, 6 chars, 200 px, 3.0). languages
    None: the language rule is left out (the caller runs it on the rows the others keep)."""
    w = np.asarray(widths, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64)
    short, long = np.minimum(w, h), np.maximum(w, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = long / short
    texts = list(texts)
    language = {} if languages is None else {"language": np.asarray(languages, dtype=object) == basic["language"]}
    return {
        **language,
        "min_words": word_counts(texts) >= basic["min_words"],
        "min_chars": char_counts(texts) >= basic["min_chars"],
        "min_image_side": short >= basic["min_image_side"],
        "max_aspect_ratio": aspect <= basic["max_aspect_ratio"],
    }


def caption_filter_mask(texts, languages) -> np.ndarray:
    """image_based's caption_filter: English, > 1 fastText tokens, > 5 characters."""
    texts = list(texts)
    return english_mask(languages) & (fasttext_token_counts(texts) > 1) & (char_counts(texts) > 5)


def nearest_centroids(features: np.ndarray, centroids: np.ndarray, batch: int = 65536) -> np.ndarray:
    """Index of the centroid with the largest inner product per feature row (faiss exact search;
    DataComp: torch.argmax of features @ centroids.T in float32, no normalisation)."""
    import faiss

    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    if features.ndim != 2 or centroids.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise ConfigError(f"features of shape {features.shape} cannot be matched to centroids of shape "
                          f"{centroids.shape}")
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    out = np.empty(len(features), dtype=np.int64)
    for start in range(0, len(features), batch):
        part = np.ascontiguousarray(features[start:start + batch], dtype=np.float32)
        out[start:start + len(part)] = index.search(part, 1)[1][:, 0] if len(part) else []
    return out


def target_centroid_ids(target_features: np.ndarray, pool_centroids: np.ndarray) -> np.ndarray:
    """Sorted distinct pool centroids nearest to the target-task features (DataComp: torch.unique of
    the ImageNet-1k features' centroid ids)."""
    return np.unique(nearest_centroids(target_features, pool_centroids))


def image_based_mask(l14_img: np.ndarray, pool_centroids: np.ndarray, targets: np.ndarray,
                     caption_keep: np.ndarray) -> np.ndarray:
    """Rows passing the caption filter whose image feature's nearest centroid is a target."""
    keep = np.zeros(len(caption_keep), dtype=bool)
    rows = np.flatnonzero(caption_keep)
    if len(rows):
        keep[rows] = np.isin(nearest_centroids(np.asarray(l14_img)[rows], pool_centroids), targets)
    return keep
