"""Train the MoDE seed, the experts and the dense baseline with open_clip_train.

The schedule (MoDE §4): one T-epoch cosine schedule. The seed trains epochs [0, S) on all kept
data; each of the n experts resumes from the seed (weights, optimizer, scaler, epoch) and trains
[S, T) on its own cluster; the dense baseline resumes from the seed too and trains n·(T−S) epochs on
all data with the tail [S, T) of the schedule stretched over them. Every run uses the same samples
per epoch (open_clip_train's --train-num-samples over resampled shards), so steps per epoch match
whatever the cluster size.

Cost identity: the experts together cost n·(T−S) epochs, and the dense baseline costs the same
n·(T−S) epochs, so MoDE-n vs dense is compared at equal compute on top of the shared seed:
    flops(expert_00) + … + flops(expert_{n-1}) == flops(dense)
    MoDE-n total / one dense T-epoch run = (S + n·(T−S)) / T   (MoDE-4, 27 of 32: 1.47×)
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from modeflow.common.atomic import atomic_path, write_json
from modeflow.train.checkpoints import CheckpointMismatchError, check_fits, checkpoint_epoch, latest_good_checkpoint
from modeflow.common.errors import ConfigError, ModeflowError
from modeflow.pool.plan import expert_name
from modeflow.common.provenance import claim_work_dir, file_stamp, retire_work_dir

# DataComp's scales (reference/DATACOMP.md) on MoDE's schedule (27 of 32 epochs for the seed);
# "samples_seen" is for a whole T-epoch dense run, so samples per epoch = samples_seen / T.
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
    "xlarge": dict(_DATACOMP, model="ViT-L-14", batch_size=90112, lr=1e-3, warmup=10000,
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


def plan_runs(cfg: Mapping, *, num_experts: int, samples_per_epoch: int) -> dict[str, RunPlan]:
    """"seed", "expert_00".."expert_{n-1}" and (if cfg["dense"]) "dense", keyed by name."""
    if num_experts < 1:
        raise ConfigError(f"cluster.num_experts: need at least one expert, got {num_experts}")
    T, S = cfg["schedule_epochs"], cfg["seed_epochs"]
    steps = steps_per_epoch(samples_per_epoch, cfg["batch_size"], cfg["workers"])
    per_sample = train_flops_per_sample(cfg["model"])

    def plan(name: str, resume: int, stop: int) -> RunPlan:
        seen = steps * cfg["batch_size"] * (stop - resume)
        return RunPlan(name=name, model=cfg["model"], resume_epoch=resume, stop_epoch=stop,
                       schedule_epochs=T, samples_per_epoch=samples_per_epoch,
                       steps_per_epoch=steps, global_batch=cfg["batch_size"], samples_seen=seen,
                       flops=per_sample * seen)

    runs = {"seed": plan("seed", 0, S)}
    for i in range(num_experts):
        runs[f"expert_{expert_name(i)}"] = plan(f"expert_{expert_name(i)}", S, T)
    if cfg.get("dense", True):
        runs["dense"] = plan("dense", S, S + num_experts * (T - S))
    return runs


def schedule_argv(run: RunPlan) -> list[str]:
    """modeflow.train.entry's schedule options (before the `--`)."""
    return ["--schedule-epochs", str(run.schedule_epochs), "--resume-epoch", str(run.resume_epoch),
            "--run-epochs", str(run.run_epochs)]


def entry_options(cfg: Mapping, *, gpus: int, threads: int | None) -> list[str]:
    """modeflow.train.entry's data/compute options. On CPU, torch computes on the job's cores
    minus one per data worker: on 2 idle cores open_clip_train with 1 compute thread + 1 worker
    ran at 495 samples/s, with 2 compute threads sharing the cores with the worker at 388."""
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


def first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list, by `scontrol show hostnames` (parsed here if absent)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, check=True).stdout.split()
        if out:
            return out[0]
    except (FileNotFoundError, subprocess.CalledProcessError):
        pass
    # "node[03-05,09],gpu7" -> "node03": the first name, the first number of its first range
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ConfigError(f"SLURM_JOB_NODELIST: cannot read a host from {nodelist!r}")
    prefix, ranges = m[1], m[2]
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def launcher_argv(gpus: int, nodes: int, env: Mapping[str, str]) -> list[str]:
    """The command that starts modeflow.train.entry: one process on cpu, torchrun on GPUs.

    Several nodes: one torchrun per node through `srun`, meeting at the first host of the Slurm
    allocation (c10d rendezvous, id = the Slurm job id).
    """
    entry = ["-m", "modeflow.train.entry"]
    if gpus == 0:
        if nodes > 1:
            raise ConfigError("train: several nodes need GPUs (gpus >= 1)")
        return [sys.executable, *entry]
    # `python -m torch.distributed.run` is torchrun, without relying on PATH
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        return [*torchrun, "--standalone", "--nproc-per-node", str(gpus), *entry]
    if not env.get("SLURM_JOB_NODELIST"):
        raise ConfigError(f"train: {nodes} nodes need a Slurm allocation (SLURM_JOB_NODELIST unset)")
    master = env.get("MASTER_ADDR") or first_slurm_host(env["SLURM_JOB_NODELIST"])
    port = env.get("MASTER_PORT", "29500")
    return ["srun", "--nodes", str(nodes), "--ntasks-per-node", "1", *torchrun,
            "--nnodes", str(nodes), "--nproc-per-node", str(gpus),
            "--rdzv-id", env.get("SLURM_JOB_ID", "modeflow"), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"{master}:{port}", *entry]


class TrainingFailedError(ModeflowError):
    """open_clip_train exited non-zero."""


def _stream(cmd: list[str], env: Mapping[str, str], sink) -> tuple[int, list[str]]:
    """Run `cmd`, copying its output line by line to `sink`; return (exit code, last lines)."""
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(env), bufsize=1) as proc:
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            tail = (tail + [line.rstrip()])[-40:]
    return proc.returncode, tail


def _fits(model_name: str, checkpoint: Path) -> bool:
    try:
        check_fits(model_name, checkpoint)
    except CheckpointMismatchError:
        return False
    return True


def run_training(name: str, cfg: Mapping, *, train_tars: Sequence[str | Path] | str,
                 init_checkpoint: str | Path | None, run_dir: str | Path,
                 out_checkpoint: str | Path, out_meta: str | Path, num_experts: int,
                 samples_per_epoch: int, gpus: int = 0, nodes: int = 1, threads: int | None = None,
                 env: Mapping[str, str] | None = None, sink=None) -> dict:
    """Train run `name` ("seed", "expert_03", "dense") and publish its final checkpoint + meta.

    Rerunning after a kill resumes from the newest good checkpoint in run_dir/checkpoints.
    `samples_per_epoch` is the same for every run (see samples_per_epoch()). `threads`: the CPU
    cores the job holds (the rule's threads), shared by compute and data workers on CPU.
    """
    from modeflow.train.curves import parse_log

    sink = sink or sys.stdout
    env = dict(os.environ if env is None else env)
    runs = plan_runs(cfg, num_experts=num_experts, samples_per_epoch=samples_per_epoch)
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
    claim_work_dir(run_dir, fingerprint_inputs, keep_old=True)
    resume: str | None
    done = latest_good_checkpoint(run_dir / "checkpoints")
    if done is not None and not _fits(run.model, done):
        # e.g. a run dir from before fingerprints, adopted, but of another architecture
        retire_work_dir(run_dir, "other-model", keep_old=True, why=f"holds checkpoints that do not fit {run.model}")
        claim_work_dir(run_dir, fingerprint_inputs, keep_old=True)
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
        code, tail = _stream(cmd, env, sink)
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
