"""A CLIP model's L2-normalised features for zero-shot evaluation: text features, clip_benchmark's
per-class zero-shot classifier, and a task's image features in shard order."""

from __future__ import annotations

import sys
from typing import Iterable, Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.vectors import normalize_rows
from modeflow.evaluate.tasks import Task, fill_template, iter_task_samples

TEXT_BATCH = 256


def encode_texts(model, tokenizer, texts: Sequence[str], *, device: str = "cpu",
                 batch_size: int = TEXT_BATCH) -> np.ndarray:
    """L2-normalised text features, float32 (len(texts), D)."""
    import torch

    out = []
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[lo:lo + batch_size])).to(device)
            out.append(model.encode_text(tokens).float().cpu().numpy())
    return normalize_rows(np.concatenate(out).astype(np.float32), allow_zero=True)


def class_text_features(model, tokenizer, classnames: Sequence[str], templates: Sequence[str], *,
                        device: str = "cpu") -> np.ndarray:
    """clip_benchmark's zero-shot classifier: per class, fill every template, encode, normalise,
    average, renormalise. Returns float32 (C, D) with unit rows."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    per_text = encode_texts(model, tokenizer, texts, device=device)
    per_class = per_text.reshape(len(classnames), len(templates), -1).mean(axis=1)
    return normalize_rows(per_class, allow_zero=True).astype(np.float32)


def _image_batches(task: Task, preprocess, batch_size: int) -> Iterable[tuple[list, list]]:
    images, targets = [], []
    for sample in iter_task_samples(task, preprocess):
        images.append(sample.image)
        targets.append(sample.target)
        if len(images) == batch_size:
            yield images, targets
            images, targets = [], []
    if images:
        yield images, targets


def image_features(model, preprocess, task: Task, *, device: str = "cpu", batch_size: int = 64,
                   progress: bool = True) -> tuple[np.ndarray, list]:
    """L2-normalised image features (N, D) and the samples' targets, in shard order."""
    import torch
    from tqdm import tqdm

    feats, targets = [], []
    with torch.inference_mode(), tqdm(desc=f"eval {task.name}", unit="img", disable=not progress,
                                      file=sys.stderr) as bar:
        for images, batch_targets in _image_batches(task, preprocess, batch_size):
            feats.append(model.encode_image(torch.stack(images).to(device)).float().cpu().numpy())
            targets.extend(batch_targets)
            bar.update(len(images))
    if not feats:
        raise InputDataError(f"task {task.path}: its shards hold no samples")
    return normalize_rows(np.concatenate(feats).astype(np.float32), allow_zero=True), targets
