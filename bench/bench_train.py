"""Training benchmark: open_clip_train through modeflow's wrapper vs a plain in-memory loop.

Product: `modeflow.train.run.run_training` (python -m modeflow.train.entry → open_clip_train) on
real expert shards (default results/experts/00; generated if absent), the demo preset's model and
batch. Baseline, measured in the same run: the same model, batch size and number of steps trained
by a plain loop on one synthetic in-memory batch (open_clip's ClipLoss + AdamW; no data loading,
logging or checkpoints: the compute floor), run before and after ours and averaged. Both compute
with the job's cores (--threads) minus one per data worker, as a CPU training job runs
(modeflow.train.argv.entry_options). Printed: samples/s of both (ours over the training steps,
from open_clip_train's per-step log, and end to end) and the ratio ours / baseline.
Bar: >= 0.9 (exit 1 below it). Figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_train.py [--shards results/experts/00] [--epochs 2]
        [--samples-per-epoch 5000] [--batch-size 128] [--workers 1] [--threads N] [--direct]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # for fixtures, the tests' shard writer
BAR = 0.9


def generated_shards(root: Path, num_samples: int = 2000, per_shard: int = 500) -> list[Path]:
    """Coloured 32 px squares with two-word captions, when no demo run is at hand."""
    from fixtures import Sample, jpeg, write_shards

    rng = np.random.default_rng(0)
    colours, shapes = ["red", "green", "blue", "grey"], ["circle", "square", "stripe", "dot"]
    samples = []
    for i in range(num_samples):
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        pixels[..., i % 3] = 220
        samples.append(Sample(f"{i:09d}", f"a {colours[i % 4]} {shapes[(i // 4) % 4]}", jpg=jpeg(pixels)))
    return write_shards(root, samples, per_shard, name="{:08d}")


def run_ours(tars: list[Path], cfg: dict, samples_per_epoch: int, workdir: Path, threads: int) -> dict:
    from modeflow.train.run import run_training

    start = time.perf_counter()
    meta = run_training("seed", cfg, train_tars=tars, init_checkpoint=None,
                        run_dir=workdir / "runs" / "seed", out_checkpoint=workdir / "seed.pt",
                        out_meta=workdir / "seed.json", num_experts=1,
                        samples_per_epoch=samples_per_epoch, threads=threads, sink=io.StringIO())
    wall = time.perf_counter() - start
    curve = meta["curve"]
    # logged every step: each line's "Batch (t)" is that step's time, data wait included
    loop_seconds = sum(row["batch_time"] for row in curve)
    return {"steady": len(curve) * cfg["batch_size"] / loop_seconds,
            "end_to_end": meta["samples_seen"] / wall,
            "steps": meta["samples_seen"] // cfg["batch_size"], "wall": wall}


def run_direct(tars: list[Path], cfg: dict, samples_per_epoch: int, workdir: Path, compute_threads: int) -> float:
    """samples/s of open_clip_train.main started directly (same argv, no modeflow entry)."""
    import subprocess

    from modeflow.train.argv import build_argv
    from modeflow.train.runs import plan_runs
    from modeflow.train.curves import parse_log

    run = plan_runs(cfg, num_experts=1, samples_per_epoch=samples_per_epoch)["seed"]
    argv = build_argv(run, cfg, train_data="::".join(map(str, tars)), run_dir=workdir / "direct",
                      resume=None, device="cpu", workers=cfg["workers"], seed=0, precision="fp32")
    code = (f"import sys, torch; torch.set_num_threads({compute_threads}); "
            "from modeflow.train.architectures import register_model_configs; "
            "register_model_configs(); from open_clip_train.main import main; main(sys.argv[1:])")
    subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True)
    curve = parse_log(workdir / "direct" / "out.log")
    return len(curve) * cfg["batch_size"] / sum(row["batch_time"] for row in curve)


def run_baseline(cfg: dict, steps: int, compute_threads: int) -> float:
    """samples/s of a plain ClipLoss + AdamW loop on one in-memory batch, same model and batch."""
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

    torch.set_num_threads(compute_threads)

    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(cfg["model"])
    model_cfg = open_clip.get_model_config(cfg["model"])
    size, context = model_cfg["vision_cfg"]["image_size"], model_cfg["text_cfg"]["context_length"]
    batch = cfg["batch_size"]
    images = torch.randn(batch, 3, size, size)
    texts = torch.randint(1, 49407, (batch, context))
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                                  eps=cfg["eps"], weight_decay=cfg["wd"])
    model.train()
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps (allocator, first-call overheads) are not timed
            start = time.perf_counter()
        optimizer.zero_grad()
        image_features, text_features, logit_scale = model(images, texts)
        loss_fn(image_features, text_features, logit_scale).backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=Path, default=REPO / "results" / "experts" / "00",
                        help="a directory of webdataset .tar shards (generated if absent)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples-per-epoch", type=int, default=5000, help="default: the demo preset's")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="cores of the training job (default: all); compute gets threads - workers")
    parser.add_argument("--direct", action="store_true",
                        help="also time open_clip_train without modeflow's entry (wrapper cost)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from modeflow.train.recipe import resolve_train_config

    cfg = resolve_train_config({"preset": "demo", "batch_size": args.batch_size,
                                "schedule_epochs": args.epochs + 1, "seed_epochs": args.epochs,
                                "workers": args.workers, "log_every_n_steps": 1})
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        tars = sorted(args.shards.glob("*.tar")) if args.shards.is_dir() else []
        source = str(args.shards)
        if not tars:
            (tmp / "shards").mkdir()
            tars, source = generated_shards(tmp / "shards"), "generated"
        steps = args.epochs * -(-args.samples_per_epoch // args.batch_size)
        # the CPUs are shared: measure the baseline before and after ours and take the mean
        compute = max(1, args.threads - args.workers)
        before = run_baseline(cfg, steps, compute)
        ours = run_ours(tars, cfg, args.samples_per_epoch, tmp, args.threads)
        after = run_baseline(cfg, steps, compute)
        baseline = (before + after) / 2
        every_core = run_baseline(cfg, steps, args.threads) if compute != args.threads else None
        direct = run_direct(tars, cfg, args.samples_per_epoch, tmp, compute) if args.direct else None
    ratio = ours["steady"] / baseline
    print(f"shards: {source} ({len(tars)} tars); model {cfg['model']}, batch {cfg['batch_size']}, "
          f"{ours['steps']} steps, {args.threads} cores: {compute} compute thread(s) + {args.workers} data worker(s)")
    print(f"ours (open_clip_train via modeflow.train.entry): {ours['steady']:.0f} samples/s "
          f"over the training steps; {ours['end_to_end']:.0f} samples/s end to end "
          f"({ours['wall']:.1f} s incl. process start and checkpoints)")
    print(f"baseline (plain loop, in-memory batch):          {baseline:.0f} samples/s "
          f"(before {before:.0f}, after {after:.0f}; {compute} compute thread(s))")
    if every_core is not None:
        print(f"for information, the baseline computing on all {args.threads} cores: {every_core:.0f} samples/s "
              f"(ours / it: {ours['steady'] / every_core:.2f})")
    if direct is not None:
        print(f"open_clip_train started directly (no modeflow entry): {direct:.0f} samples/s; "
              f"ours/direct {ours['steady'] / direct:.2f} (the wrapper's cost and its options: direct runs "
              "with the same compute threads but open_clip_train's own shuffle buffer)")
    print(f"ratio ours/baseline: {ratio:.2f} (bar >= {BAR})")
    sys.exit(0 if ratio >= BAR else 1)


if __name__ == "__main__":
    main()
