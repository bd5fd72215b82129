"""The training recipe: the presets, the checked `train` config section, and what a recipe implies
per run: samples and optimizer steps per epoch, FLOPs per sample.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping

from modeflow.common.errors import ConfigError

# DataComp's scales (its small..xlarge tracks, docs/method.md §12) on MoDE's schedule (27 of 32
# epochs for the seed); "samples_seen" is for a whole T-epoch dense run, so samples per epoch =
# samples_seen / T.
_DATACOMP = dict(wd=0.2, beta1=0.9, beta2=0.98, eps=1e-6, schedule_epochs=32, seed_epochs=27,
                 precision="auto", local_loss=True, gather_with_grad=True,
                 grad_checkpointing=True, workers=4, log_every_n_steps=100)
PRESETS: dict[str, dict] = {
    # A tiny shipped CLIP for 2 CPU cores: seed + 4 experts + dense = 6 + 2·4·2 = 22 epochs of 5000
    # samples (samples_per_epoch None would mean "the kept samples"). The image tower is a 4-stage
    # ResNet of width 16: on the demo it learned every domain, where the tiny ViT
    # (modeflow-tiny-vit, 1.6x fewer FLOPs) stayed near chance.
    "demo": dict(model="modeflow-tiny-resnet", batch_size=128, lr=1e-3, warmup=50, wd=0.2,
                 beta1=0.9, beta2=0.98, eps=1e-6, schedule_epochs=8, seed_epochs=6,
                 samples_seen=None, samples_per_epoch=5000, precision="auto", local_loss=False,
                 gather_with_grad=False, grad_checkpointing=False, workers=1,
                 log_every_n_steps=10, sample_shuffle=1000),
    "small": dict(_DATACOMP, model="ViT-B-32", batch_size=4096, lr=5e-4, warmup=500,
                  samples_seen=12_800_000, samples_per_epoch=None),
    "medium": dict(_DATACOMP, model="ViT-B-32", batch_size=4096, lr=5e-4, warmup=500,
                   samples_seen=128_000_000, samples_per_epoch=None),
    "large": dict(_DATACOMP, model="ViT-B-16", batch_size=8192, lr=5e-4, warmup=500,
                  samples_seen=1_280_000_000, samples_per_epoch=None),
    # scale_configs.py sets beta2 only for xlarge (0.95); the others keep open_clip's ViT 0.98
    "xlarge": dict(_DATACOMP, model="ViT-L-14", batch_size=90112, lr=1e-3, warmup=10000, beta2=0.95,
                   samples_seen=12_800_000_000, samples_per_epoch=None),
}
# Keys only modeflow reads (everything else in a preset maps to an open_clip_train option).
_EXTRA_KEYS = {"preset", "seed", "extra_args", "dense"}


def resolve_train_config(train_cfg: Mapping | None) -> dict:
    """The `train` config section: its preset's values, then every key the user set on top.

    `batch_size` is the global batch (split over all GPUs); `warmup` is in steps; `extra_args` is
    a list of further open_clip_train options passed as is.
    """
    train_cfg = dict(train_cfg or {})
    preset = train_cfg.get("preset", "demo")
    if preset not in PRESETS:
        raise ConfigError(f"train.preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = {"preset": preset, "seed": 0, "extra_args": [], "dense": True, "sample_shuffle": None,
           **PRESETS[preset]}
    unknown = set(train_cfg) - set(cfg) - _EXTRA_KEYS
    if unknown:
        raise ConfigError(f"train: unknown key(s) {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(train_cfg)
    for key in ("schedule_epochs", "batch_size", "warmup"):
        if not isinstance(cfg[key], int) or cfg[key] < (1 if key != "warmup" else 0):
            raise ConfigError(f"train.{key}: expected a positive integer, got {cfg[key]!r}")
    if not isinstance(cfg["seed_epochs"], int) or not 1 <= cfg["seed_epochs"] < cfg["schedule_epochs"]:
        raise ConfigError(f"train.seed_epochs: must be in [1, train.schedule_epochs="
                          f"{cfg['schedule_epochs']}), got {cfg['seed_epochs']!r}")
    if not (isinstance(cfg["lr"], (int, float)) and cfg["lr"] > 0):
        raise ConfigError(f"train.lr: expected a positive number, got {cfg['lr']!r}")
    if cfg["precision"] not in ("auto", "fp32", "amp", "amp_bf16", "bf16", "fp16", "pure_bf16"):
        raise ConfigError(f"train.precision: unknown precision {cfg['precision']!r}")
    return cfg


def samples_per_epoch(cfg: Mapping, kept_samples: int) -> int:
    """Samples per epoch for every run: set explicitly, or samples_seen / T, or the kept samples."""
    if cfg.get("samples_per_epoch"):
        return int(cfg["samples_per_epoch"])
    if cfg.get("samples_seen"):
        return int(cfg["samples_seen"]) // int(cfg["schedule_epochs"])
    return int(kept_samples)


def steps_per_epoch(samples: int, global_batch: int, workers: int) -> int:
    """open_clip_train's rounding (data.get_wds_dataset): whole batches, a multiple of the workers."""
    workers = max(1, workers)
    return math.ceil(math.ceil(samples / global_batch) / workers) * workers


@functools.lru_cache(maxsize=None)
def train_flops_per_sample(model_name: str) -> float:
    """FLOPs of one forward+backward per image–text pair, counted on a meta-device batch of 2."""
    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise ConfigError(f"train.model: unknown open_clip model {model_name!r}")
    size = model_cfg["vision_cfg"]["image_size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    context = model_cfg.get("text_cfg", {}).get("context_length", 77)
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = open_clip.create_model(model_name, device="meta")
        images = torch.empty(2, 3, *size)
        texts = torch.zeros(2, context, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        image_features, text_features, _ = model(images, texts)
        (image_features.sum() + text_features.sum()).backward()
    return counter.get_total_flops() / 2
