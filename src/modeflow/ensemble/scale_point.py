"""A scale point: the same DAG, control arms included, on a larger pool and a bigger image tower on
one GPU, with the claims table written next to the hardware it ran on.

Sizes (`--size`):
- `gpu`: 10x the demo pool (120,000 rows), `modeflow-small-resnet` (a 4-stage ResNet of width 32 at
  64 px, about 14x the demo tower's FLOPs per sample), 25,000 samples per epoch, train and evaluate
  on one GPU (`--resources gpu=1` keeps one GPU job at a time), meant to finish in at most 9 minutes
  of GPU time on one recent datacenter GPU;
- `demo`: the demo config as it is (2 CPU cores: about the demo's time);
- `tiny`: the tests' tiny pool (300 rows, seconds of training): to check the script on a CPU.

    python tools/gpu_scale_point.py --size gpu --out /tmp/scale   (python -m modeflow.ensemble.scale_point)

Writes `<out>/scale_point.md`: the hardware (GPU name and memory from torch, CPU model and cores),
the wall time of the pipeline, the arms' task averages and the claims table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from modeflow.common.atomic import atomic_path
from modeflow.ensemble.claims import claims_markdown
from modeflow.ensemble.summary import read_summary
from modeflow.ensemble.sweep import REPO, point_claims, with_values

# each size as dotted overrides of the demo config (config/config.yaml)
SIZES: dict[str, dict] = {
    "tiny": {
        "pool.demo.num_samples": 300, "pool.demo.image_size": 32, "pool.demo.eval_images_per_class": 5,
        "pool.demo.retrieval_pairs": 20, "download.shard_size": 100, "download.threads": 8,
        "embed.batch_size": 64, "cluster.num_fine": 16, "reshard.shard_size": 50,
        "train.schedule_epochs": 2, "train.seed_epochs": 1, "train.batch_size": 32,
        "train.samples_per_epoch": 64, "train.warmup": 2, "evaluate.batch_size": 64,
    },
    "demo": {},
    "gpu": {
        "pool.demo.num_samples": 120_000, "pool.demo.eval_images_per_class": 40,
        "download.shard_size": 10_000, "download.threads": 32, "download.image_size": 64,
        "embed.device": "cuda", "embed.batch_size": 1024, "cluster.num_fine": 256, "reshard.shard_size": 5000,
        "train.model": "modeflow-small-resnet", "train.gpus": 1, "train.batch_size": 512,
        "train.samples_per_epoch": 25_000, "train.warmup": 100, "train.workers": 6, "train.sample_shuffle": 5000,
        "evaluate.gpus": 1, "evaluate.device": "cuda", "evaluate.batch_size": 1024,
    },
}


def scale_config(base: Mapping, size: str) -> dict:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    return with_values(base, SIZES[size])


def hardware() -> dict:
    """What the run ran on: the GPUs torch sees (name, memory) and the CPU."""
    info: dict = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(), "gpus": []}
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    try:
        import torch

        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)})
    except Exception as exc:  # no torch build with CUDA: say so
        info["gpu_error"] = str(exc)
    return info


def hardware_line(info: Mapping) -> str:
    gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in info.get("gpus", [])) or "no GPU"
    return f"{gpus}; CPU: {info.get('cpu')} ({info.get('cpu_cores')} cores)"


def report_lines(workdir: Path, size: str, info: Mapping, wall_seconds: float, results_dir: str = "results") -> list[str]:
    results = workdir / results_dir
    lines = [f"# Scale point: {size}", "", f"Hardware: {hardware_line(info)}", "",
             f"Pipeline wall time: {wall_seconds / 60:.1f} min (snakemake, all jobs)", ""]
    summary_csv = results / "ensemble" / "summary.csv"
    if summary_csv.is_file():
        lines += ["| arm | average |", "|---|---|"]
        lines += [f"| {arm} | {100 * row['average']:.1f} |" for arm, row in read_summary(summary_csv).items()]
        lines.append("")
    claims = point_claims(workdir, results_dir)
    lines += claims_markdown(claims) if claims else ["(no claims table: the run did not finish, or was a dry run)"]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/gpu_scale_point.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="gpu")
    parser.add_argument("--out", type=Path, required=True, help="working directory of the run")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    parser.add_argument("--dry-run", action="store_true", help="plan the DAG (snakemake -n), run nothing")
    args = parser.parse_args(argv)
    config = scale_config(yaml.safe_load(args.configfile.read_text()) or {}, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    configfile = args.out / "config.yaml"
    with atomic_path(configfile) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(args.snakefile), "--directory", str(args.out),
           "--cores", str(args.cores), f"--configfile={configfile}"]
    if args.size == "gpu":
        cmd += ["--resources", "gpu=1"]
    cmd += (["-n"] if args.dry_run else []) + ["all"]
    start = time.time()
    with open(args.out / "snakemake.log", "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.time() - start
    info = hardware()
    lines = report_lines(args.out, args.size, info, wall, config.get("results_dir", "results"))
    if code != 0:
        lines.insert(2, f"**snakemake failed (exit {code}); see {args.out / 'snakemake.log'}**\n")
    with atomic_path(args.out / "scale_point.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(args.out / "hardware.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
