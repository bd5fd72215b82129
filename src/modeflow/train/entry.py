"""Entry point that runs open_clip_train with MoDE's learning-rate schedule and a NaN guard.

    python -m modeflow.train.entry --schedule-epochs T --resume-epoch S --run-epochs R -- <open_clip_train argv>
    torchrun --standalone --nproc-per-node G -m modeflow.train.entry ...

open_clip_train stays the training loop; this module only (1) registers modeflow's model configs,
(2) swaps the cosine schedule for one that knows where in a longer schedule the run sits,
(3) stops the run with a clear message when the loss stops being finite, and (4) seeds the
data workers' randomness (sample shuffle, augmentations) from (seed, epoch) at every epoch, so a
run is deterministic for a fixed seed and a run resumed at epoch k trains exactly as an
uninterrupted one. Two options tune it for CPUs: --torch-threads (compute threads, so data workers
keep a core) and --sample-shuffle (open_clip_train's sample shuffle buffer, a module constant).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from modeflow.common.errors import ModeflowError

EXIT_NONFINITE_LOSS = 3
EXIT_OPEN_CLIP_REFUSED = 4


class NonFiniteLossError(ModeflowError):
    """The training loss became NaN or infinite."""


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


def guard_loss(loss, progress: Progress):
    """Wrap an open_clip loss so a non-finite total raises before backward() touches the weights."""
    import torch

    class NonFiniteGuard(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = loss

        def forward(self, *args, **kwargs):
            out = self.inner(*args, **kwargs)
            total = sum(out.values()) if isinstance(out, dict) else (
                sum(out) if isinstance(out, (tuple, list)) else out)
            finite = torch.isfinite(total.detach()).all().to(torch.int32)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # every rank must stop together, or the others hang in the next all-gather
                torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            if not finite.item():
                spe = progress.steps_per_epoch or 1
                raise NonFiniteLossError(
                    f"loss became {float(total.detach().float().sum())} at step {progress.step} "
                    f"(epoch {progress.step // spe})")
            return out

    return NonFiniteGuard()


def parse_entry_argv(argv: list[str]) -> tuple[Schedule, argparse.Namespace, list[str]]:
    """Our options (before `--`, or anywhere if torchrun dropped the `--`): the run's place in
    the schedule and the rest of them; then open_clip_train's argv."""
    parser = argparse.ArgumentParser(prog="python -m modeflow.train.entry", allow_abbrev=False)
    parser.add_argument("--schedule-epochs", type=int, required=True)
    parser.add_argument("--resume-epoch", type=int, required=True)
    parser.add_argument("--run-epochs", type=int, required=True)
    parser.add_argument("--torch-threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    parser.add_argument("--sample-shuffle", type=int, default=0,
                        help="open_clip_train's sample shuffle buffer (0: its default)")
    if "--" in argv:
        cut = argv.index("--")
        ours, rest = parser.parse_args(argv[:cut]), argv[cut + 1:]
    else:
        ours, rest = parser.parse_known_args(argv)
    return Schedule(ours.schedule_epochs, ours.resume_epoch, ours.run_epochs), ours, rest


def _last_checkpoint_text(open_clip_argv: list[str]) -> str:
    from open_clip_train.params import parse_args

    args = parse_args(open_clip_argv)
    ckpt_dir = Path(args.logs) / str(args.name) / "checkpoints"
    found = sorted(ckpt_dir.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if found:
        return str(found[-1])
    return f"{args.resume} (the checkpoint this run started from)" if args.resume else "none"


def _quiet_torch_loggers() -> None:
    """open_clip_train sets every logger to INFO, so torch's exit hooks print pages of stats."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch"):
            logging.getLogger(name).setLevel(logging.WARNING)


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


def seed_per_epoch(data_module) -> None:
    """Make open_clip_train's data pipeline draw each epoch from (seed, epoch) only."""
    unseeded, resampler = data_module.wds.shuffle, data_module.ResampledShards2

    def seeded_shuffle(bufsize=1000, initial=100, rng=None, **kwargs):
        return unseeded(bufsize, initial, rng=rng or EpochSeededRandom(), **kwargs)

    data_module.wds.shuffle = seeded_shuffle
    data_module.ResampledShards2 = lambda *args, **kwargs: EpochSeededShards(resampler(*args, **kwargs))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    schedule, options, open_clip_argv = parse_entry_argv(argv)
    if options.torch_threads:
        import torch

        torch.set_num_threads(options.torch_threads)

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    import open_clip_train.main as oc_main

    progress = Progress()
    # The one deliberate patch: main.py calls the cosine_lr name it imported with a schedule over
    # exactly the epochs it trains; MoDE needs "epochs [S, T) of a T-epoch cosine" instead.
    oc_main.cosine_lr = schedule_factory(schedule, progress)
    create_loss = oc_main.create_loss
    oc_main.create_loss = lambda args: guard_loss(create_loss(args), progress)
    import open_clip_train.data as oc_data

    seed_per_epoch(oc_data)
    if options.sample_shuffle:
        # module constants its get_wds_dataset reads when it builds the pipeline
        oc_data._SAMPLE_SHUFFLE_SIZE = options.sample_shuffle
        oc_data._SAMPLE_SHUFFLE_INITIAL = max(1, options.sample_shuffle // 5)
    try:
        status = oc_main.main(open_clip_argv)
    except NonFiniteLossError as exc:
        _quiet_torch_loggers()
        print(f"modeflow: {exc}; last good checkpoint: {_last_checkpoint_text(open_clip_argv)}; "
              "lower the lr (train.lr) or raise the warmup, then rerun: it resumes from there",
              file=sys.stderr, flush=True)
        return EXIT_NONFINITE_LOSS
    _quiet_torch_loggers()
    if status is not None and status != 0:  # e.g. "Experiment already exists": it only returns -1
        print(f"modeflow: open_clip_train refused to run (status {status}); see the lines above",
              file=sys.stderr, flush=True)
        return EXIT_OPEN_CLIP_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
