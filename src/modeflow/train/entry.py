"""Entry point that runs open_clip_train with MoDE's learning-rate schedule and a NaN guard.

    python -m modeflow.train.entry --schedule-epochs T --resume-epoch S --run-epochs R -- <open_clip_train argv>
    torchrun --standalone --nproc-per-node G -m modeflow.train.entry ...

open_clip_train stays the training loop. This module registers modeflow's model configs and
replaces a few of open_clip_train's names (the patches listed below) so that a run follows MoDE's
schedule, stops with a clear message when the loss stops being finite, and draws its data from
(seed, epoch) alone: deterministic for a fixed seed, and a run resumed at epoch k trains exactly as
an uninterrupted one. Two options tune it for CPUs: --torch-threads (compute threads, so data
workers keep a core) and --sample-shuffle (open_clip_train's sample shuffle buffer).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from modeflow.common.errors import ModeflowError
from modeflow.train.epoch_seeds import seeded_resampler, seeded_shuffle
from modeflow.train.loss_guard import NonFiniteLossError, guard_loss
from modeflow.train.schedule import Progress, Schedule, schedule_factory

# The patches of the pinned open_clip_train (open-clip-torch 3.3.0, webdataset 0.2.86). Each one
# replaces a module attribute that the upstream function named beside it looks up at call time;
# for none of them does upstream have an option or a hook (params.py, main.py, data.py) that does
# the same. tests/test_train.py records their signatures (and that of data.pytorch_worker_seed,
# which epoch_seeds calls), so an upgrade of the pin that changes one fails there instead of
# silently training another way.
#
# open_clip_train.main.cosine_lr, read by main.main: schedule.schedule_factory
#   Upstream's cosine runs over exactly the --epochs it trains, from epoch 0. MoDE's seed trains
#   epochs [0, S) of a T-epoch cosine and the dense baseline stretches its tail [S, T) over
#   n·(T−S) epochs; upstream has no schedule length apart from --epochs (--lr-scheduler: cosine,
#   const, const-cooldown). For an expert (resumed at S, --epochs T) the two coincide.
# open_clip_train.main.create_loss, read by main.main: loss_guard.guard_loss around upstream's loss
#   Upstream backpropagates a NaN or infinite loss and saves the broken weights; it checks
#   nothing. The guard raises before backward(), on all ranks together, and main() exits with
#   EXIT_NONFINITE_LOSS, naming the last good checkpoint.
# webdataset.shuffle, read by open_clip_train.data.get_wds_dataset as wds.shuffle:
#   epoch_seeds.seeded_shuffle around upstream's
#   get_wds_dataset gives the sample shuffle no rng, so webdataset seeds it from the pid and the
#   clock and two runs of one recipe differ; no option passes a seed.
# open_clip_train.data.ResampledShards2, read by data.get_wds_dataset:
#   epoch_seeds.seeded_resampler around upstream's
#   Upstream reseeds the shard choice per epoch (deterministic=True) but nothing else: its
#   persistent workers carry their python/numpy/torch RNGs (augmentations) from epoch to epoch,
#   so a run resumed at epoch k would draw other augmentations than an uninterrupted one. The
#   wrapper reseeds them, and the shuffle's rng, from (worker seed, epoch) as each epoch starts;
#   get_wds_dataset takes no worker_seed or worker_init_fn that could.
# open_clip_train.data._SAMPLE_SHUFFLE_SIZE and _SAMPLE_SHUFFLE_INITIAL, read by
#   data.get_wds_dataset: --sample-shuffle (only when given)
#   The sample shuffle buffer (5000 samples, refilled every epoch) is a module constant; no
#   option sets it.
PATCHED = (  # (upstream attribute replaced, the upstream function that reads it)
    ("open_clip_train.main.cosine_lr", "open_clip_train.main.main"),
    ("open_clip_train.main.create_loss", "open_clip_train.main.main"),
    ("webdataset.shuffle", "open_clip_train.data.get_wds_dataset"),
    ("open_clip_train.data.ResampledShards2", "open_clip_train.data.get_wds_dataset"),
    ("open_clip_train.data._SAMPLE_SHUFFLE_SIZE", "open_clip_train.data.get_wds_dataset"),
    ("open_clip_train.data._SAMPLE_SHUFFLE_INITIAL", "open_clip_train.data.get_wds_dataset"),
)

EXIT_NONFINITE_LOSS = 3
EXIT_OPEN_CLIP_REFUSED = 4


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


def _replace(module, attribute: str, value) -> None:
    """Set one of the PATCHED attributes; setting a name upstream no longer has would do nothing."""
    target = f"{module.__name__}.{attribute}"
    if target not in {patched for patched, _ in PATCHED}:
        raise ModeflowError(f"{target}: not one of the documented patches (PATCHED)")
    if not hasattr(module, attribute):
        raise ModeflowError(f"{target}: the installed open_clip_train has no such attribute; "
                            "the patch needs updating for it")
    setattr(module, attribute, value)


def patch_open_clip_train(schedule: Schedule, sample_shuffle: int) -> None:
    """Apply the PATCHED replacements (see above) before open_clip_train.main.main runs."""
    import open_clip_train.main as oc_main

    progress = Progress()  # the schedule records the step, the loss guard reports it
    create_loss = oc_main.create_loss
    _replace(oc_main, "cosine_lr", schedule_factory(schedule, progress))
    _replace(oc_main, "create_loss", lambda args: guard_loss(create_loss(args), progress))
    import open_clip_train.data as oc_data

    _replace(oc_data.wds, "shuffle", seeded_shuffle(oc_data.wds.shuffle))
    _replace(oc_data, "ResampledShards2", seeded_resampler(oc_data.ResampledShards2))
    if sample_shuffle:
        _replace(oc_data, "_SAMPLE_SHUFFLE_SIZE", sample_shuffle)
        _replace(oc_data, "_SAMPLE_SHUFFLE_INITIAL", max(1, sample_shuffle // 5))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    schedule, options, open_clip_argv = parse_entry_argv(argv)
    if options.torch_threads:
        import torch

        torch.set_num_threads(options.torch_threads)

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    import open_clip_train.main as oc_main

    patch_open_clip_train(schedule, options.sample_shuffle)
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
