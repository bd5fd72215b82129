"""Text-to-image retrieval through the mixture (MoDE paper, Eq. 7): every query is routed by its own
embedding as a one-class task, and image i's score for query j is Σ_c w_c(j) · cos_c(image i,
query j), the ensemble stage's combination of retrieval similarities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.ensemble.combine import ensemble_similarity
from modeflow.evaluate.features import encode_texts
from modeflow.mixture.features import combined_scores
from modeflow.mixture.images import FailedImage, expand_images


@dataclass(frozen=True)
class Ranking:
    query: str
    images: list[str]  # best first
    scores: list[float]  # their combined cosine similarities


@dataclass
class Retrieval:
    kind: str  # the weighting: code | paper | uniform
    experts: list[str]  # the experts used (model names)
    weights: np.ndarray  # (queries, experts used): each query's routed weights
    rankings: list[Ranking]  # one per query, in the order given
    failed: list[FailedImage]
    images: list[str] = field(repr=False)  # the images that decoded, the similarity's rows
    similarity: np.ndarray = field(repr=False)  # (images, queries), combined


def rank_order(similarity: np.ndarray) -> np.ndarray:
    """(queries, images): per query, images best first; ties go to the lower index, as the
    evaluation's retrieval recalls break them."""
    return np.argsort(-similarity.T, axis=1, kind="stable")


def rank_images(mixture, queries: str | Sequence[str], images, *, top_k: int | None = None,
                kind: str = "code", experts: Sequence[int] | None = None, batch_size: int = 64,
                progress: bool | None = None) -> Retrieval:
    """Rank `images` (paths, directories, PIL images) for each query; top_k None: all of them."""
    queries = [queries] if isinstance(queries, str) else list(queries)
    if not queries or not all(str(q).strip() for q in queries):
        raise InputDataError("retrieval needs a non-empty query")
    if top_k is not None and top_k < 1:
        raise InputDataError(f"top-k must be at least 1, got {top_k}")
    inputs = expand_images(images)
    chosen = mixture.choose_experts(experts)
    weights = mixture.query_weights(queries, kind, experts=experts)
    texts = [encode_texts(e.model, e.tokenizer, queries, device=mixture.device) for e in chosen]
    decoded, failed, similarity = combined_scores(chosen, inputs, texts, ensemble_similarity, weights,
                                                  device=mixture.device, batch_size=batch_size,
                                                  progress=progress, desc="retrieve")
    order = rank_order(similarity)[:, :top_k]
    rankings = [Ranking(q, [decoded[i] for i in row], [float(similarity[i, j]) for i in row])
                for j, (q, row) in enumerate(zip(queries, order))]
    return Retrieval(kind, [e.name for e in chosen], weights, rankings, failed, decoded, similarity)
