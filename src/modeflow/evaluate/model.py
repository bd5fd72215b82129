"""The CLIP model an evaluation runs: a trained checkpoint, or untrained weights (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from modeflow.common.errors import ConfigError
from modeflow.train.architectures import register_model_configs
from modeflow.train.checkpoints import load_clip


def load_model(model_name: str, checkpoint: str | Path | None, device: str = "cpu"):
    """(model, preprocess, tokenizer): modeflow.train.checkpoints.load_clip, or untrained weights for
    checkpoint=None (tests and benchmarks)."""
    if checkpoint is not None:
        return load_clip(model_name, checkpoint, device=device)
    import open_clip

    register_model_configs()
    if open_clip.get_model_config(model_name) is None:
        raise ConfigError(f"unknown open_clip architecture {model_name!r}")
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)
