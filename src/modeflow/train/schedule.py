"""MoDE's learning-rate schedule: where a run sits in the T-epoch warmup + cosine, and a drop-in
for open_clip_train's cosine_lr that follows it (see docs/method.md §4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modeflow.common.errors import ModeflowError


@dataclass(frozen=True)
class Schedule:
    """Where a run sits in the T-epoch cosine schedule: it trains epochs [resume, resume + run)."""

    schedule_epochs: int
    resume_epoch: int
    run_epochs: int


def schedule_lr(step: float, *, base_lr: float, warmup_steps: int, steps_per_epoch: int,
                schedule_epochs: int, resume_epoch: int, run_epochs: int) -> float:
    """Learning rate at global `step` of a run inside a `schedule_epochs`-epoch warmup+cosine.

    The seed (resume 0, run S < T) and each expert (resume S, run T-S) follow the T-epoch cosine
    exactly, so an expert continues where the seed stopped. A run longer than what is left of the
    schedule (the dense baseline: resume S, run n·(T-S)) stretches the tail [S, T) over its own
    epochs, so it too ends at lr 0.
    """
    start = resume_epoch * steps_per_epoch
    tail = (schedule_epochs - resume_epoch) * steps_per_epoch
    run = run_epochs * steps_per_epoch
    position = start + (step - start) * tail / run if run > tail else step
    if position < warmup_steps:
        return base_lr * (position + 1) / warmup_steps  # open_clip_train's warmup
    total = schedule_epochs * steps_per_epoch
    progress = min(1.0, (position - warmup_steps) / max(1, total - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress)) * base_lr


@dataclass
class Progress:
    """Last step the scheduler saw: lets the loss guard say where training broke."""

    step: int = -1
    steps_per_epoch: int = 0


def schedule_factory(schedule: Schedule, progress: Progress):
    """A drop-in for open_clip_train.scheduler.cosine_lr that follows `schedule`."""

    def make(optimizer, base_lr, warmup_length, steps):
        stop_epoch = schedule.resume_epoch + schedule.run_epochs
        # open_clip_train passes steps = batches per epoch × --epochs (the stop epoch)
        if steps % stop_epoch:
            raise ModeflowError(f"open_clip_train planned {steps} steps, not a multiple of "
                                f"--epochs {stop_epoch}: --epochs must be resume + run epochs")
        progress.steps_per_epoch = steps // stop_epoch

        def adjust(step):
            progress.step = step
            lr = schedule_lr(step, base_lr=base_lr, warmup_steps=warmup_length,
                             steps_per_epoch=progress.steps_per_epoch,
                             schedule_epochs=schedule.schedule_epochs,
                             resume_epoch=schedule.resume_epoch, run_epochs=schedule.run_epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            return lr

        return adjust

    return make
