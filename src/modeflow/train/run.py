"""Training one run end to end: claim its run directory, resume or start it through
modeflow.train.entry, and publish its final checkpoint and meta."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from modeflow.common.atomic import atomic_path, write_json
from modeflow.common.errors import ConfigError, ModeflowError
from modeflow.common.provenance import claim_work_dir, file_stamp, retire_work_dir
from modeflow.train.argv import build_argv, entry_options, schedule_argv
from modeflow.train.checkpoints import CheckpointMismatchError, check_fits, checkpoint_epoch, latest_good_checkpoint
from modeflow.train.curves import parse_log
from modeflow.train.launch import launcher_argv, stream_command
from modeflow.common.names import CONTROL_ARMS, expert_index, is_expert_model
from modeflow.train.runs import plan_runs


log = logging.getLogger("modeflow")


class TrainingFailedError(ModeflowError):
    """open_clip_train exited non-zero."""


def _fits(model_name: str, checkpoint: Path) -> bool:
    try:
        check_fits(model_name, checkpoint)
    except CheckpointMismatchError:
        return False
    return True


def _start_point(done: Path | None, init_checkpoint, run, *, final_epoch: int) -> str:
    if done is not None:
        epoch = checkpoint_epoch(done)
        if epoch >= final_epoch:
            return f"already trained to epoch {epoch} ({done}); publishing it"
        return f"resuming its own run from {done} (epoch {epoch} of {final_epoch})"
    if init_checkpoint is not None:
        return f"starting from {Path(init_checkpoint).resolve()} (epoch {run.resume_epoch}), training to epoch {final_epoch}"
    return f"starting from random initialisation, training to epoch {final_epoch}"


def run_training(name: str, cfg: Mapping, *, train_tars: Sequence[str | Path] | str,
                 init_checkpoint: str | Path | None, run_dir: str | Path,
                 out_checkpoint: str | Path, out_meta: str | Path, num_experts: int,
                 samples_per_epoch: int, gpus: int = 0, nodes: int = 1, threads: int | None = None,
                 keep_superseded: int = 2, env: Mapping[str, str] | None = None, sink=None) -> dict:
    """Train run `name` ("seed", "expert_03", "dense", "dense_1x", "random_03") and publish its final checkpoint + meta.

    Rerunning after a kill resumes from the newest good checkpoint in run_dir/checkpoints.
    `samples_per_epoch` is the same for every run (see run_samples_per_epoch()). `threads`: the CPU
    cores the job holds (the rule's threads), shared by compute and data workers on CPU.
    `keep_superseded`: run directories of other inputs kept in run_dir's superseded/ (0: deleted).
    """
    sink = sink or sys.stdout
    env = dict(os.environ if env is None else env)
    # every run a config may ask for, the control arms' and an expert added later included (the
    # workflow picks which to train)
    added = expert_index(name) + 1 - num_experts if is_expert_model(name) else 0
    runs = plan_runs(cfg, num_experts=num_experts, samples_per_epoch=samples_per_epoch,
                     control_arms=CONTROL_ARMS, added_experts=max(added, 0))
    if name not in runs:
        raise ConfigError(f"train: unknown run {name!r}; planned runs: {sorted(runs)}")
    run = runs[name]
    run_dir = Path(run_dir)
    train_data = train_tars if isinstance(train_tars, str) else "::".join(map(str, train_tars))
    if not train_data:
        raise ConfigError(f"train: run {name!r} has no training shards")

    # a run dir made from other inputs (another recipe, a retrained seed) is moved aside, not resumed
    fingerprint_inputs = {"run": run.to_dict(), "train": dict(cfg), "train_data": train_data,
                          "init": file_stamp(init_checkpoint), "gpus": gpus, "nodes": nodes}
    claim_work_dir(run_dir, fingerprint_inputs, keep=keep_superseded)
    resume: str | None
    done = latest_good_checkpoint(run_dir / "checkpoints")
    if done is not None and not _fits(run.model, done):
        # e.g. a run dir from before fingerprints, adopted, but of another architecture
        retire_work_dir(run_dir, "other-model", keep=keep_superseded,
                        why=f"holds checkpoints that do not fit {run.model}")
        claim_work_dir(run_dir, fingerprint_inputs, keep=keep_superseded)
        done = None
    if done is not None:
        resume = "latest"  # open_clip_train's own mechanism; corrupt files were moved aside
    else:
        resume = None
        if init_checkpoint is not None:
            check_fits(run.model, init_checkpoint)
            got = checkpoint_epoch(init_checkpoint)
            if got != run.resume_epoch:
                raise ConfigError(f"{init_checkpoint}: has {got} epochs, run {name!r} resumes at "
                                  f"epoch {run.resume_epoch} (train.seed_epochs)")
            resume = str(Path(init_checkpoint).resolve())
        # open_clip_train refuses to start when out.log exists without --resume latest
        (run_dir / "out.log").unlink(missing_ok=True)
    # open_clip_train itself logs "No pretrained weights loaded ... initialized randomly" before
    # it loads the --resume checkpoint; this line says what the run really starts from
    log.info("%s: %s", name, _start_point(done, init_checkpoint, run, final_epoch=run.stop_epoch))

    world = max(1, gpus) * nodes
    precision = cfg["precision"] if cfg["precision"] != "auto" else ("amp" if gpus else "fp32")
    argv = build_argv(run, cfg, train_data=train_data, run_dir=run_dir, resume=resume,
                      device="cuda" if gpus else "cpu", workers=cfg["workers"], seed=cfg["seed"],
                      precision=precision, world_size=world)
    cmd = launcher_argv(gpus, nodes, env) + schedule_argv(run) + entry_options(cfg, gpus=gpus, threads=threads) \
        + ["--"] + argv
    final = run_dir / "checkpoints" / f"epoch_{run.stop_epoch}.pt"
    start = time.time()
    if done is None or done != final:
        code, tail = stream_command(cmd, env, sink)
        if code != 0:
            raise TrainingFailedError(f"training run {name!r} failed (exit {code}); log: "
                                      f"{run_dir / 'out.log'}\n" + "\n".join(tail[-15:]))
    wall = time.time() - start
    if latest_good_checkpoint(run_dir / "checkpoints") != final:
        raise TrainingFailedError(f"training run {name!r} ended without {final}")

    with atomic_path(out_checkpoint, suffix=".pt") as tmp:
        shutil.copyfile(final, tmp)  # keeps optimizer/scaler/epoch: experts resume from the seed
    curve = parse_log(run_dir / "out.log") if (run_dir / "out.log").exists() else []
    meta = {
        "name": name, "model": run.model, "preset": cfg["preset"], "epochs_trained": run.run_epochs,
        "resume_epoch": run.resume_epoch, "stop_epoch": run.stop_epoch,
        "schedule_epochs": run.schedule_epochs, "samples_per_epoch": run.samples_per_epoch,
        "samples_seen": run.samples_seen, "flops": run.flops, "wall_seconds": round(wall, 3),
        "gpus": gpus, "nodes": nodes, "precision": precision, "checkpoint": str(out_checkpoint),
        "final_loss": curve[-1]["loss"] if curve else None, "curve": curve,
    }
    write_json(out_meta, meta)
    return meta
