"""Seeding open_clip_train's data pipeline from (seed, epoch) alone.

A run is then deterministic for a fixed seed, and a run resumed at epoch k draws the same samples
and augmentations in epoch k as an uninterrupted one. The data workers' RNGs are reseeded as the
shard resampler starts each epoch, and webdataset's sample shuffle gets an rng that follows them.
"""

from __future__ import annotations

import random


# Per data-worker process: the seed of the epoch the worker is producing (set by EpochSeededShards).
_EPOCH_SEED: int | None = None
# workers=0: the main process's seed when its first epoch starts (open_clip_train seeded it from
# --seed and the rank), captured once because reseed_for_epoch reseeds torch after that.
_MAIN_BASE_SEED: int | None = None


def epoch_seed(epoch: int) -> int:
    """The data pipeline's seed for `epoch`. In a worker: torch's worker seed, drawn once per run
    (open_clip_train keeps workers persistent), spaced per epoch as its shard resampler does. With
    workers=0 open_clip_train's fallback ignores the epoch (every epoch would shuffle alike), so
    the main process's seed plus the epoch is used."""
    import torch
    from open_clip_train.data import pytorch_worker_seed

    global _MAIN_BASE_SEED
    if torch.utils.data.get_worker_info() is not None:
        return pytorch_worker_seed(epoch)
    if _MAIN_BASE_SEED is None:
        _MAIN_BASE_SEED = torch.initial_seed()
    return (_MAIN_BASE_SEED + 1_000_003 * epoch) % 2**63


def reseed_for_epoch(epoch: int) -> None:
    """Seed this data worker's RNGs (sample shuffle, python/numpy/torch for augmentations) from the
    worker seed and `epoch` alone: epoch k draws the same in a run resumed at k as in an
    uninterrupted one, where persistent workers would otherwise carry the RNG state over."""
    global _EPOCH_SEED
    import numpy as np
    import torch

    seed = epoch_seed(epoch)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    _EPOCH_SEED = seed


class EpochSeededShards:
    """Wraps open_clip_train's shard resampler (the pipeline's first stage, started once per epoch
    in the worker): reseeds the worker for the epoch held in the resampler's shared epoch."""

    def __init__(self, resampler) -> None:
        self.resampler = resampler

    def __call__(self):
        reseed_for_epoch(self.resampler.epoch.get_value())
        return iter(self.resampler)


class EpochSeededRandom(random.Random):
    """An rng for webdataset's sample shuffle, which webdataset otherwise seeds from the pid and
    the clock: reseeded from the worker's per-epoch seed whenever a new epoch starts."""

    def __init__(self) -> None:
        super().__init__(0)
        self._seed_used: int | None = None

    def _sync(self) -> None:
        if self._seed_used != _EPOCH_SEED:
            self._seed_used = _EPOCH_SEED
            self.seed(_EPOCH_SEED)

    def random(self) -> float:
        self._sync()
        return super().random()

    def getrandbits(self, k: int) -> int:
        self._sync()
        return super().getrandbits(k)


def seeded_shuffle(unseeded):
    """webdataset's sample shuffle stage `unseeded`, drawing from an EpochSeededRandom unless the
    caller passes its own rng."""

    def shuffle(bufsize=1000, initial=100, rng=None, **kwargs):
        return unseeded(bufsize, initial, rng=rng or EpochSeededRandom(), **kwargs)

    return shuffle


def seeded_resampler(resampler):
    """open_clip_train's shard resampler class `resampler`, its instances wrapped in
    EpochSeededShards."""
    return lambda *args, **kwargs: EpochSeededShards(resampler(*args, **kwargs))
