"""Image features of the chosen experts, batch by batch, as the evaluation computes them: each
image decoded once and preprocessed once per architecture, every expert's image tower run on the
batch, features L2-normalised (float32). Images that do not decode are set aside, named.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterator, Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.vectors import normalize_rows
from modeflow.mixture.images import FailedImage, ImageInput, decode_image


def _preprocessed(image: ImageInput, preprocess_by_arch: dict) -> dict:
    pil = decode_image(image)
    try:
        return {arch: preprocess(pil) for arch, preprocess in preprocess_by_arch.items()}
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputDataError(f"{image.name}: cannot be preprocessed ({type(exc).__name__}: {exc})") from None


def iter_image_features(experts: Sequence, inputs: Sequence[ImageInput], failed: list[FailedImage], *,
                        device: str, batch_size: int, progress: bool | None = None,
                        desc: str = "images") -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Yield (names, [features (B, D) per expert]) per batch of images that decoded; each one that
    did not is appended to `failed`. progress: a tqdm bar on stderr (None: when there is more than
    one batch)."""
    import torch
    from tqdm import tqdm

    if batch_size < 1:
        raise InputDataError(f"batch size must be at least 1, got {batch_size}")
    preprocess_by_arch = {}
    for expert in experts:
        preprocess_by_arch.setdefault(expert.arch, expert.preprocess)
    show = len(inputs) > batch_size if progress is None else progress

    def run(names, tensors):
        feats = []
        with torch.inference_mode():
            for expert in experts:
                batch = torch.stack([t[expert.arch] for t in tensors]).to(device)
                out = expert.model.encode_image(batch).float().cpu().numpy()
                feats.append(normalize_rows(out.astype(np.float32), allow_zero=True))
        return names, feats

    names, tensors = [], []
    with tqdm(total=len(inputs), desc=desc, unit="img", disable=not show, file=sys.stderr) as bar:
        for image in inputs:
            try:
                tensors.append(_preprocessed(image, preprocess_by_arch))
                names.append(image.name)
            except InputDataError as exc:
                failed.append(FailedImage(image.name, str(exc)))
            bar.update(1)
            if len(names) == batch_size:
                yield run(names, tensors)
                names, tensors = [], []
        if names:
            yield run(names, tensors)


def no_image_decoded(failed: Sequence[FailedImage]) -> InputDataError:
    return InputDataError(f"none of the {len(failed)} images decodes (first: {failed[0].reason})")


def combined_scores(experts: Sequence, inputs: Sequence[ImageInput], text_features: Sequence[np.ndarray],
                    combine: Callable, weights, *, device: str, batch_size: int,
                    progress: bool | None, desc: str) -> tuple[list[str], list[FailedImage], np.ndarray]:
    """Every decodable image scored against each expert's text features (image · textᵀ), the
    experts' scores combined by `combine(scores, weights)` (the ensemble stage's ensemble_logits
    or ensemble_similarity): (decoded image names, images that did not decode, (N, T) scores).
    No image decoding is an error."""
    failed: list[FailedImage] = []
    decoded, blocks = [], []
    for names, feats in iter_image_features(experts, inputs, failed, device=device, batch_size=batch_size,
                                            progress=progress, desc=desc):
        scores = [(f @ t.T).astype(np.float32) for f, t in zip(feats, text_features)]
        blocks.append(combine(scores, weights))
        decoded += names
    if not decoded:
        raise no_image_decoded(failed)
    return decoded, failed, np.concatenate(blocks)
