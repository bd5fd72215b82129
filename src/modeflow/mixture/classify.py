"""Zero-shot classification of the user's images with the user's class names, through the mixture:
each chosen expert's cosine logits against its zero-shot classifier (clip_benchmark's, as the
evaluation builds it), combined with the task's routed weights as the ensemble stage combines them
(Σ_c w_c L_c, raw cosines, no logit scale). Scores are those combined cosines. The text side
(weights, classifiers) comes from the mixture, which keeps it per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.ensemble.combine import ensemble_logits
from modeflow.mixture.features import combined_scores
from modeflow.mixture.images import FailedImage, expand_images

DEFAULT_TEMPLATES = ("a photo of a {c}.",)  # CLIP's plain prompt, when the user gives none


@dataclass(frozen=True)
class Prediction:
    image: str
    labels: list[str]  # top-k class names, best first
    scores: list[float]  # their combined cosine logits
    indices: list[int]  # their positions in the class list


@dataclass
class Classification:
    classnames: list[str]
    kind: str  # the weighting: code | paper | uniform
    experts: list[str]  # the experts used (model names)
    weights: list[float]  # their weights, in that order
    predictions: list[Prediction]
    failed: list[FailedImage]
    logits: np.ndarray = field(repr=False)  # (images that decoded, classes), the combined logits


def check_classes(classnames: Sequence[str], templates: Sequence[str]) -> tuple[list[str], list[str]]:
    """Class names and templates stripped and checked: none empty, no duplicate class, `{c}` in
    every template."""
    names = [str(c).strip() for c in classnames]
    if not names or not all(names):
        raise InputDataError("the class list is empty" if not names else
                             f"class {names.index('') + 1} of the class list is an empty name")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise InputDataError(f"class {dupes[0]!r} is in the class list twice")
    temps = [str(t).strip() for t in templates if str(t).strip()]
    if not temps:
        raise InputDataError("no prompt template given")
    no_slot = [t for t in temps if "{c}" not in t]
    if no_slot:
        raise InputDataError(f"template {no_slot[0]!r} has no {{c}} placeholder for the class name")
    return names, temps


def top_k_of(logits: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k best columns, best first; ties go to the lower index (as argmax)."""
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def classify(mixture, images, classnames: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES, *,
             top_k: int = 5, kind: str = "code", experts: Sequence[int] | None = None,
             batch_size: int = 64, progress: bool | None = None) -> Classification:
    """Classify `images` (paths, directories, PIL images) among `classnames` (see module doc)."""
    names, temps = check_classes(classnames, templates)
    if top_k < 1:
        raise InputDataError(f"top-k must be at least 1, got {top_k}")
    inputs = expand_images(images)
    chosen = mixture.choose_experts(experts)
    weights = mixture.weights(names, temps, kind, experts=experts)
    classifiers = [mixture.classifier(e, names, temps) for e in chosen]
    decoded, failed, combined = combined_scores(chosen, inputs, classifiers, ensemble_logits, weights,
                                                device=mixture.device, batch_size=batch_size,
                                                progress=progress, desc="classify")
    best = top_k_of(combined, min(top_k, len(names)))
    predictions = [Prediction(image, [names[i] for i in row], [float(combined[r, i]) for i in row],
                              [int(i) for i in row]) for r, (image, row) in enumerate(zip(decoded, best))]
    return Classification(names, kind, [e.name for e in chosen], [float(w) for w in weights], predictions,
                          failed, combined)
