"""The mixture's expert weights for new class names or queries: the ensemble stage's routing
(modeflow.ensemble.routing), called as the routing step calls it, so that the same class names and
templates get the same weights as the stage saved; plus restricting them to some of the experts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from modeflow.cluster.model import ClusterModel
from modeflow.common.errors import InputDataError
from modeflow.common.vectors import normalize_rows
from modeflow.ensemble.routing import (ENCODE_BATCH, class_embeddings, mode_weights_code,
                                       mode_weights_paper, route_queries)

# the routing formulas (docs/method.md §5): MoDE's code, the paper's Eqs. 4-6, or none
WEIGHT_KINDS = ("code", "paper", "uniform")


def _check_kind(kind: str) -> None:
    if kind not in WEIGHT_KINDS:
        raise InputDataError(f"unknown weighting {kind!r}; expected one of {', '.join(WEIGHT_KINDS)}")


def task_weights(encoder, cluster: ClusterModel, classnames: Sequence[str], templates: Sequence[str],
                 kind: str = "code") -> np.ndarray:
    """(n,) weights of a classification task with these class names and prompt templates."""
    _check_kind(kind)
    n = cluster.num_experts
    if kind == "uniform":
        return np.full(n, 1.0 / n)
    emb = class_embeddings(encoder, classnames, templates)
    weigh = mode_weights_code if kind == "code" else mode_weights_paper
    return weigh(emb, cluster.fine_centers, cluster.fine_to_coarse, n)


def query_weights(encoder, cluster: ClusterModel, queries: Sequence[str], kind: str = "code") -> np.ndarray:
    """(T, n) weights, each query (a caption) routed alone as a one-class task, as the routing
    step routes a retrieval task's captions."""
    _check_kind(kind)
    n = cluster.num_experts
    if kind == "uniform":
        return np.full((len(queries), n), 1.0 / n)
    # the routing step's normalisation of the captions' embeddings (float64)
    emb = normalize_rows(encoder.encode(list(queries), ENCODE_BATCH), dtype=np.float64, allow_zero=True)
    return route_queries(emb, cluster.fine_centers, cluster.fine_to_coarse, n, variant=kind)


def restrict(weights: np.ndarray, experts: Sequence[int]) -> np.ndarray:
    """The chosen experts' weights (last axis), renormalised to sum to 1: routing as before, the
    other experts dropped."""
    chosen = np.asarray(weights, dtype=np.float64)[..., list(experts)]
    return chosen / chosen.sum(axis=-1, keepdims=True)
