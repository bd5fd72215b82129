"""The torch device a config's `device` value asks for (embed.device, evaluate.device, ...)."""

from __future__ import annotations

from modeflow.common.errors import ConfigError


def resolve_device(device: str, key: str) -> str:
    """"auto" -> cuda when available else cpu; an explicit cuda without a GPU is a config error
    naming the config `key` that asked for it."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}: {device!r} asked for but no CUDA device is available")
    return device
