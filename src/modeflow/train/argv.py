"""The command-line arguments of one training run: modeflow.train.entry's own options (the run's
place in the schedule, CPU tuning) and open_clip_train's argv (the recipe's hyper-parameters)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from modeflow.common.errors import ConfigError
from modeflow.train.runs import RunPlan


def schedule_argv(run: RunPlan) -> list[str]:
    """modeflow.train.entry's schedule options (before the `--`)."""
    return ["--schedule-epochs", str(run.schedule_epochs), "--resume-epoch", str(run.resume_epoch),
            "--run-epochs", str(run.run_epochs)]


def entry_options(cfg: Mapping, *, gpus: int, threads: int | None) -> list[str]:
    """modeflow.train.entry's data/compute options. On CPU, torch computes on the job's cores
    minus one per data worker: compute threads that share their cores with the workers' decoding
    train slower than fewer threads that leave each worker a core (bench/README.md, bench_train)."""
    options = []
    if not gpus and threads:
        options += ["--torch-threads", str(max(1, threads - cfg["workers"]))]
    if cfg["sample_shuffle"]:
        options += ["--sample-shuffle", str(cfg["sample_shuffle"])]
    return options


def build_argv(run: RunPlan, cfg: Mapping, *, train_data: str, run_dir: Path, resume: str | None,
               device: str, workers: int, seed: int, precision: str, world_size: int = 1) -> list[str]:
    """open_clip_train's argv for `run` (hyper-parameters from the resolved `cfg`)."""
    if cfg["batch_size"] % world_size:
        raise ConfigError(f"train.batch_size: the global batch {cfg['batch_size']} does not split "
                          f"evenly over {world_size} GPUs")
    run_dir = Path(run_dir)
    argv = [
        "--model", cfg["model"], "--train-data", train_data,
        "--dataset-type", "webdataset", "--dataset-resampled",
        "--train-num-samples", str(run.samples_per_epoch),
        "--batch-size", str(cfg["batch_size"] // world_size), "--epochs", str(run.stop_epoch),
        "--lr", repr(float(cfg["lr"])), "--warmup", str(cfg["warmup"]), "--wd", repr(float(cfg["wd"])),
        "--beta1", repr(float(cfg["beta1"])), "--beta2", repr(float(cfg["beta2"])),
        "--eps", repr(float(cfg["eps"])), "--lr-scheduler", "cosine",
        "--logs", str(run_dir.parent), "--name", run_dir.name, "--save-frequency", "1",
        # no hub downloads, no imagenet: evaluation is the workflow's own stage
        "--zeroshot-frequency", "0", "--val-frequency", "0", "--report-to", "",
        "--precision", precision, "--device", device, "--workers", str(workers),
        "--seed", str(seed), "--log-every-n-steps", str(cfg["log_every_n_steps"]),
    ]
    if resume:
        argv += ["--resume", str(resume)]
    for key, flag in (("local_loss", "--local-loss"), ("gather_with_grad", "--gather-with-grad"),
                      ("grad_checkpointing", "--grad-checkpointing")):
        if cfg.get(key):
            argv.append(flag)
    return argv + [str(a) for a in cfg.get("extra_args") or []]
