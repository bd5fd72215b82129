"""MoDE's routing: each task's expert weights, from its class names (or each caption) alone.

A task's class names are embedded with the *clustering* text encoder and compared with the fine
cluster centers; experts whose fine clusters sit near the class names get more weight. Two
formulas: the paper's Eqs. 4-6 (MoDE, arXiv:2404.16030) and the one in MoDE's code (MetaCLIP's
`mode/`), which differ (see docs/method.md §5).

Distances: class embeddings are L2-normalised, fine centers are used exactly as stored, which is
the distance modeflow.cluster.assign.assign uses to route training captions (it normalises the queries,
not the centers) and what MoDE's code does (torch.cdist to the raw centers).

Retrieval (paper Eq. 7): every caption is routed by its own embedding, as a one-class task (C = 1).

compute_task_weights needs the tasks, the cluster model and the encoder, never an expert; it runs
at most once per task, and modeflow.ensemble.combine uses its saved weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.model import load_cluster_model
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_name
from modeflow.common.vectors import normalize_rows
from modeflow.ensemble.arms import SHARP, SHARP_ARM, routing_arms
from modeflow.ensemble.saved_weights import query_weights_file, write_task_weights
from modeflow.evaluate.tasks import Task, fill_template, load_task, task_captions

CODE_SCALE = 5.0  # α = CODE_SCALE · log10(max(10, C − TOO_MANY_CLASSES))
CODE_TEMPERATURE = 8.0  # w = softmax(s / CODE_TEMPERATURE)
TOO_MANY_CLASSES = 200
FEW_CLASSES = 10  # below this, MoDE sharpens with exp(0.5 − √C)
PAPER_LAMBDA = 0.2
ENCODE_BATCH = 64  # short texts: bigger batches only pad more (MiniLM on CPU: 256 is 2x slower)


# --- embeddings -------------------------------------------------------------------------------


def _normalize(x: np.ndarray) -> np.ndarray:
    return normalize_rows(x, dtype=np.float64, allow_zero=True)


def class_embeddings(encoder, classnames: Sequence[str], templates: Sequence[str],
                     batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Per class: fill every template, embed, L2-normalise, average, renormalise -> (C, D)."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    per_text = _normalize(encoder.encode(texts, batch_size))
    return _normalize(per_text.reshape(len(classnames), len(templates), -1).mean(axis=1)).astype(np.float32)


def nearest_fine(emb: np.ndarray, fine_centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L2 distance, index) of each normalised row's nearest fine center."""
    emb = _normalize(emb)
    centers = np.asarray(fine_centers, dtype=np.float64)
    if emb.shape[1] != centers.shape[1]:
        raise InputDataError(f"text embeddings have dim {emb.shape[1]} but the fine centers have "
                             f"{centers.shape[1]}: use the encoder the clustering used")
    d2 = (emb ** 2).sum(1)[:, None] - 2 * emb @ centers.T + (centers ** 2).sum(1)[None, :]
    idx = d2.argmin(axis=1)
    return np.sqrt(np.maximum(d2[np.arange(len(emb)), idx], 0.0)), idx


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# --- weights ----------------------------------------------------------------------------------


def code_alpha_beta(num_classes: int) -> tuple[float, float]:
    alpha = CODE_SCALE * math.log10(max(10, num_classes - TOO_MANY_CLASSES))
    beta = math.exp(0.5 - math.sqrt(num_classes)) if num_classes < FEW_CLASSES else 0.0
    return alpha, beta


def mode_weights_code(class_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                      num_experts: int, temperature: float = CODE_TEMPERATURE) -> np.ndarray:
    """MoDE code's weights: s_c = Σ_{l: g(l)=c} exp((β − d_l)·α), 0 for experts no class maps to;
    w = softmax(s / 8). Another `temperature` gives the routing-sharpness arm (mode_sharp)."""
    dist, fine = nearest_fine(class_emb, fine_centers)
    alpha, beta = code_alpha_beta(len(dist))
    s = np.bincount(np.asarray(fine_to_coarse)[fine], weights=np.exp((beta - dist) * alpha),
                    minlength=num_experts)
    return _softmax(s / temperature)


def mode_weights_paper(class_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                       num_experts: int, lam: float = PAPER_LAMBDA) -> np.ndarray:
    """The paper's Eqs. 4-6: A_l = exp(−d_l² / λ) to each class's nearest fine center only
    (× exp(0.5 − √C) when C < 10; λ / ln C when C > 200); p(c) ∝ exp(Σ_{l: g(l)=c} A_l)."""
    dist, fine = nearest_fine(class_emb, fine_centers)
    c = len(dist)
    if c > TOO_MANY_CLASSES:
        lam = lam / math.log(c)
    a = np.exp(-dist ** 2 / lam)
    if c < FEW_CLASSES:
        a = a * math.exp(0.5 - math.sqrt(c))
    s = np.bincount(np.asarray(fine_to_coarse)[fine], weights=a, minlength=num_experts)
    return _softmax(s)


def route_queries(query_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                  num_experts: int, variant: str = "code", temperature: float | None = None) -> np.ndarray:
    """Weights (T, n) routing each query (caption) alone, i.e. as a task of C = 1 class.
    Vectorised form of mode_weights_* applied row by row; variant "sharp" is "code" with the
    softmax `temperature` given."""
    dist, fine = nearest_fine(query_emb, fine_centers)
    expert = np.asarray(fine_to_coarse)[fine]
    if variant in ("code", SHARP):
        if variant == SHARP and temperature is None:
            raise ValueError("the sharp routing variant needs a temperature")
        alpha, beta = code_alpha_beta(1)
        score = np.exp((beta - dist) * alpha)
        temperature = CODE_TEMPERATURE if variant == "code" else temperature
    elif variant == "paper":
        score, temperature = np.exp(-dist ** 2 / PAPER_LAMBDA) * math.exp(0.5 - 1.0), 1.0
    else:
        raise ValueError(f"unknown routing variant {variant!r}")
    s = np.zeros((len(dist), num_experts))
    s[np.arange(len(dist)), expert] = score
    return _softmax(s / temperature)


# --- per task ---------------------------------------------------------------------------------


def _class_weights(formula: str, emb: np.ndarray, args: tuple, temperature: float | None) -> np.ndarray:
    if formula == "paper":
        return mode_weights_paper(emb, *args)
    return mode_weights_code(emb, *args, **({"temperature": temperature} if formula == SHARP else {}))


def _classification_entry(task: Task, encoder, args: tuple, arms: Mapping[str, str],
                          temperature: float | None) -> dict:
    emb = class_embeddings(encoder, task.classnames, task.templates)
    w = {arm: _class_weights(formula, emb, args, temperature) for arm, formula in arms.items()}
    return {"kind": task.kind, "num_classes": len(task.classnames), **{k: v.tolist() for k, v in w.items()}}


def _retrieval_entry(task: Task, encoder, args: tuple, arms: Mapping[str, str],
                     temperature: float | None) -> tuple[dict, dict]:
    """(per-caption weights {arm: (T, n)}, weights.json entry)."""
    # captions in the order evaluate_model saves them (text_to_image order): run_ensemble checks the count
    captions = task_captions(task)
    emb = _normalize(encoder.encode(captions, ENCODE_BATCH))
    w = {arm: route_queries(emb, *args, variant=formula, temperature=temperature) for arm, formula in arms.items()}
    entry = {"kind": task.kind, "num_queries": len(captions), "routing": "per caption (C = 1)",
             "note": f"{' / '.join(arms)} are the per-caption weights averaged over captions",
             "query_weights": {arm: query_weights_file(task.name, arm) for arm in w}}
    return w, {**entry, **{k: v.mean(axis=0).tolist() for k, v in w.items()}}


def compute_task_weights(tasks: Sequence[str | Path], cluster_dir: str | Path | Mapping, encoder,
                         out_dir: str | Path, *, weights: str = "code",
                         sharp_temperature: float | None = None) -> dict:
    """MoDE's routing, once per task: every weighted arm's expert weights (modeflow.ensemble.arms.
    routing_arms: `mode` with the formula `weights` chooses, the other formula, and mode_sharp when a
    `sharp_temperature` is given) from the task's class names (classification) or each caption
    (retrieval), embedded with the clustering encoder. Needs no expert and no evaluation.

    Writes them in out_dir (modeflow.ensemble.saved_weights); returns the weights.json content,
    whose entries record their arms' formulas (`arms`) and the sharp temperature."""
    arms = routing_arms(weights, sharp_temperature)
    cluster = load_cluster_model(cluster_dir)
    args = (cluster.fine_centers, cluster.fine_to_coarse, cluster.num_experts)
    experts = [expert_name(i) for i in range(cluster.num_experts)]
    loaded_tasks = [load_task(t) for t in tasks]
    names = [t.name for t in loaded_tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputDataError(f"ensemble weights: two tasks are named {dupes[0]!r}; task names must be unique")
    weights_json, query_weights = {}, {}
    for task in loaded_tasks:
        if task.kind == "classification":
            entry = _classification_entry(task, encoder, args, arms, sharp_temperature)
        else:
            query_weights[task.name], entry = _retrieval_entry(task, encoder, args, arms, sharp_temperature)
        weights_json[task.name] = {**entry, "experts": experts, "arms": arms,
                                   **({"sharp_temperature": sharp_temperature} if SHARP_ARM in arms else {})}
    write_task_weights(out_dir, weights_json, query_weights)
    return weights_json
