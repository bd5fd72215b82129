"""The training runs of a MoDE: which epochs of the schedule each trains, on how many samples.

The schedule (docs/method.md §4): one T-epoch cosine schedule. The seed trains epochs [0, S) on all
kept data; each of the n experts resumes from the seed (weights, optimizer, scaler, epoch) and
trains [S, T) on its own cluster; the dense baseline resumes from the seed too and trains n·(T−S)
epochs on all data with the tail [S, T) of the schedule stretched over them. The control arms
(train.control_arms) resume from the seed as well: `dense_1x` trains [S, T) on all kept data (the
paper's dense baseline: T epochs in all, 1x cost), each random-split expert `random_NN` trains
[S, T) on its share of a random partition with the clusters' sizes. Every run uses the
same samples per epoch (open_clip_train's --train-num-samples over resampled shards), so steps per
epoch match whatever the cluster size.

Cost identity: the experts together cost n·(T−S) epochs, and the dense baseline costs the same
n·(T−S) epochs, so MoDE-n vs dense is compared at equal compute on top of the shared seed:
    flops(expert_00) + … + flops(expert_{n-1}) == flops(dense)
    MoDE-n total / one dense T-epoch run = (S + n·(T−S)) / T   (MoDE-4, 27 of 32: 1.47×)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from modeflow.common.errors import ConfigError
from modeflow.common.names import (CONTROL_ARMS, DENSE_1X_MODEL, DENSE_MODEL, RANDOM_SPLIT, SEED_MODEL,
                                   expert_model, random_model)
from modeflow.train.recipe import samples_per_epoch, steps_per_epoch, train_flops_per_sample


@dataclass(frozen=True)
class RunPlan:
    """One open_clip_train run: epochs [resume_epoch, stop_epoch) of a schedule_epochs schedule."""

    name: str
    model: str
    resume_epoch: int
    stop_epoch: int
    schedule_epochs: int
    samples_per_epoch: int
    steps_per_epoch: int
    global_batch: int
    samples_seen: int
    flops: float

    @property
    def run_epochs(self) -> int:
        return self.stop_epoch - self.resume_epoch

    def to_dict(self) -> dict:
        return {**asdict(self), "run_epochs": self.run_epochs}


def plan_runs(cfg: Mapping, *, num_experts: int, samples_per_epoch: int,
              control_arms: Sequence[str] = (), added_experts: int = 0) -> dict[str, RunPlan]:
    """"seed", "expert_00".."expert_{n-1}", then `added_experts` experts added later (grow.experts:
    "expert_n", ..., trained exactly as the others), (if cfg["dense"]) "dense" (at the compute of
    the n experts the mixture was planned with), then the runs of the `control_arms` asked for
    ("random_00".."random_{n-1}" for random_split, "dense_1x"), keyed by name."""
    if num_experts < 1:
        raise ConfigError(f"cluster.num_experts: need at least one expert, got {num_experts}")
    unknown = sorted(set(control_arms) - set(CONTROL_ARMS))
    if unknown:
        raise ConfigError(f"train.control_arms: unknown arm(s) {unknown}; known: {list(CONTROL_ARMS)}")
    T, S = cfg["schedule_epochs"], cfg["seed_epochs"]
    steps = steps_per_epoch(samples_per_epoch, cfg["batch_size"], cfg["workers"])
    per_sample = train_flops_per_sample(cfg["model"])

    def plan(name: str, resume: int, stop: int) -> RunPlan:
        seen = steps * cfg["batch_size"] * (stop - resume)
        return RunPlan(name=name, model=cfg["model"], resume_epoch=resume, stop_epoch=stop,
                       schedule_epochs=T, samples_per_epoch=samples_per_epoch,
                       steps_per_epoch=steps, global_batch=cfg["batch_size"], samples_seen=seen,
                       flops=per_sample * seen)

    runs = {SEED_MODEL: plan(SEED_MODEL, 0, S)}
    for i in range(num_experts + added_experts):
        runs[expert_model(i)] = plan(expert_model(i), S, T)
    if cfg.get("dense", True):
        runs[DENSE_MODEL] = plan(DENSE_MODEL, S, S + num_experts * (T - S))
    if RANDOM_SPLIT in control_arms:  # trained exactly as the experts, on other data
        for i in range(num_experts):
            runs[random_model(i)] = plan(random_model(i), S, T)
    if DENSE_1X_MODEL in control_arms:  # the seed continued to the end of its own schedule
        runs[DENSE_1X_MODEL] = plan(DENSE_1X_MODEL, S, T)
    return runs


def run_samples_per_epoch(name: str, cfg: Mapping, *, data_dir: str | Path,
                          seed_meta: str | Path | None = None) -> int:
    """Samples per epoch of run `name`, the same for every run.

    The seed decides it from the recipe and its data (samples_per_epoch() of the kept samples in
    the data directory's meta.json); every other run reuses the seed's, read from the seed's
    meta (`seed_meta`), since the experts' clusters are smaller than the seed's data and MoDE's
    resampled streaming keeps the steps per epoch whatever a run's data.
    """
    if name == SEED_MODEL:
        kept = json.loads((Path(data_dir) / "meta.json").read_text())["output_samples"]
        return samples_per_epoch(cfg, kept)
    if seed_meta is None:
        raise ConfigError(f"train: run {name!r} reuses the seed's samples per epoch, but got no "
                          "seed meta")
    return json.loads(Path(seed_meta).read_text())["samples_per_epoch"]
