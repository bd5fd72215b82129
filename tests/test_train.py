"""Training engine: MoDE schedule, seed → expert resume, kill/resume, NaN guard, checkpoint checks.

Real open_clip_train runs on a tiny fixture: 200 image–text pairs of 32 px, batch 32, 2 steps an
epoch, the shipped tiny ViT.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import io
import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures import Sample, jpeg, write_shards
from modeflow.train.checkpoints import (read_checkpoint, CheckpointMismatchError, CorruptCheckpointError, check_fits,
                                  checkpoint_epoch, latest_good_checkpoint, load_clip)
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.names import expert_model
from modeflow.train.argv import build_argv, entry_options
from modeflow.train.launch import first_slurm_host, launcher_argv
from modeflow.train.recipe import resolve_train_config, samples_per_epoch, train_flops_per_sample
from modeflow.train.run import TrainingFailedError, run_training
from modeflow.train.runs import plan_runs, run_samples_per_epoch
from modeflow.train.curves import parse_log
from modeflow.train.entry import PATCHED, parse_entry_argv
from modeflow.train.schedule import schedule_lr

MODEL = "modeflow-tiny-vit"
COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "stripe", "dot"]


def tiny_cfg(**overrides) -> dict:
    return resolve_train_config({"model": MODEL, "batch_size": 32, "schedule_epochs": 3, "seed_epochs": 2,
                                 "samples_per_epoch": 64, "warmup": 2, "workers": 0,
                                 "log_every_n_steps": 1, **overrides})


def colour_shards(root: Path, num_samples: int = 200, per_shard: int = 100) -> list[Path]:
    """Expert-style shards (00000000.tar, ...) of coloured 32 px squares with a noisy stripe."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(num_samples):
        c, s = i % len(COLOURS), (i // len(COLOURS)) % len(SHAPES)
        pixels = np.zeros((32, 32, 3), np.uint8)
        pixels[..., c % 3] = 200
        pixels[8 * s: 8 * s + 8] = rng.integers(0, 255, (8, 32, 3))
        samples.append(Sample(f"{i:09d}", f"a {COLOURS[c]} {SHAPES[s]}", jpg=jpeg(pixels)))
    return write_shards(root, samples, per_shard, name="{:08d}")


def train_lines(out_log: Path) -> list[int]:
    return [row["epoch"] for row in parse_log(out_log)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    return colour_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, shards) -> dict:
    root = tmp_path_factory.mktemp("seed")
    cfg = tiny_cfg()
    meta = run_training("seed", cfg, train_tars=shards, init_checkpoint=None,
                        run_dir=root / "runs" / "seed", out_checkpoint=root / "seed.pt",
                        out_meta=root / "seed.json", num_experts=2, samples_per_epoch=64,
                        sink=io.StringIO())
    return {"root": root, "cfg": cfg, "meta": meta, "checkpoint": root / "seed.pt",
            "run_dir": root / "runs" / "seed"}


# --- schedule -------------------------------------------------------------------------------

def lr(step, **kw):
    args = dict(base_lr=1.0, warmup_steps=10, steps_per_epoch=10, schedule_epochs=8)
    return schedule_lr(step, **{**args, **kw})


def test_schedule_warmup_and_seed_end_on_the_T_epoch_cosine():
    seed = dict(resume_epoch=0, run_epochs=6)
    assert lr(0, **seed) == pytest.approx(0.1)  # open_clip_train's (step + 1) / warmup
    assert lr(9, **seed) == pytest.approx(1.0)
    # last seed step 59 and the seed's end (step 60 = epoch 6 of 8): cosine at (60-10)/(80-10)
    assert lr(60, **seed) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 70)))
    assert lr(59, **seed) == pytest.approx(0.5 * (1 + math.cos(math.pi * 49 / 70)))


def test_schedule_expert_continues_the_seed_and_dense_stretches_the_tail():
    seed, expert = dict(resume_epoch=0, run_epochs=6), dict(resume_epoch=6, run_epochs=2)
    dense = dict(resume_epoch=6, run_epochs=8)  # 4 experts × 2 epochs
    for step in (59, 60, 65, 79):
        assert lr(step, **expert) == pytest.approx(lr(step, **seed))
    assert lr(80, **expert) == pytest.approx(0.0)
    # dense starts where the seed stopped, is halfway down the tail after half its run, ends at 0
    assert lr(60, **dense) == pytest.approx(lr(60, **seed))
    assert lr(60 + 40, **dense) == pytest.approx(lr(70, **expert))
    assert lr(60 + 80, **dense) == pytest.approx(0.0, abs=1e-12)
    assert lr(60 + 79, **dense) < lr(79, **expert)  # a finer tail: each step a quarter as far
    steps = [lr(s, **dense) for s in range(60, 140)]
    assert all(a > b for a, b in zip(steps, steps[1:]))


def test_entry_argv_split_with_or_without_double_dash():
    schedule, _, rest = parse_entry_argv(["--schedule-epochs", "8", "--resume-epoch", "6", "--run-epochs",
                                          "2", "--", "--resume", "latest", "--epochs", "8"])
    assert (schedule.schedule_epochs, schedule.resume_epoch, schedule.run_epochs) == (8, 6, 2)
    assert rest == ["--resume", "latest", "--epochs", "8"]
    # torchrun may drop the "--": our options are picked out, "--resume" is not taken for ours
    schedule, _, rest = parse_entry_argv(["--resume", "x.pt", "--schedule-epochs", "8", "--resume-epoch",
                                          "6", "--run-epochs", "2", "--epochs", "8"])
    assert schedule.resume_epoch == 6 and rest == ["--resume", "x.pt", "--epochs", "8"]


# --- config, plan, argv ---------------------------------------------------------------------

def test_presets_and_overrides():
    small = resolve_train_config({"preset": "small"})
    assert (small["model"], small["batch_size"], small["lr"], small["warmup"]) == \
        ("ViT-B-32", 4096, 5e-4, 500)
    assert samples_per_epoch(small, kept_samples=10) == 12_800_000 // 32
    xl = resolve_train_config({"preset": "xlarge", "lr": 4e-4})
    assert (xl["model"], xl["batch_size"], xl["lr"], xl["wd"]) == ("ViT-L-14", 90112, 4e-4, 0.2)
    assert samples_per_epoch(resolve_train_config({"samples_per_epoch": None}), 1234) == 1234
    with pytest.raises(ConfigError, match="train.preset"):
        resolve_train_config({"preset": "huge"})
    with pytest.raises(ConfigError, match="lrr"):
        resolve_train_config({"lrr": 1.0})
    with pytest.raises(ConfigError, match="train.seed_epochs"):
        resolve_train_config({"seed_epochs": 8, "schedule_epochs": 8})


def test_plan_runs_cost_identity():
    cfg = resolve_train_config({"schedule_epochs": 32, "seed_epochs": 27, "batch_size": 64})
    runs = plan_runs(cfg, num_experts=4, samples_per_epoch=1000)
    assert list(runs) == ["seed", "expert_00", "expert_01", "expert_02", "expert_03", "dense"]
    experts = [runs[expert_model(i)] for i in range(4)]
    assert runs["seed"].resume_epoch == 0 and runs["seed"].stop_epoch == 27
    assert all((e.resume_epoch, e.stop_epoch) == (27, 32) for e in experts)
    assert (runs["dense"].resume_epoch, runs["dense"].stop_epoch) == (27, 47)
    assert runs["dense"].samples_seen == sum(e.samples_seen for e in experts)
    assert runs["dense"].flops == pytest.approx(sum(e.flops for e in experts))
    # whole batches per epoch, the same for every run: 16 batches of 64 ≥ 1000 samples
    assert {r.steps_per_epoch for r in runs.values()} == {16}
    assert runs["seed"].samples_seen == 27 * 16 * 64
    total = sum(r.flops for r in runs.values() if r.name != "dense")
    assert total / (32 * 16 * 64 * train_flops_per_sample(cfg["model"])) == pytest.approx(47 / 32)


def test_flops_per_sample_grow_with_the_model():
    tiny, b32 = train_flops_per_sample(MODEL), train_flops_per_sample("ViT-B-32")
    assert 1e6 < tiny < 1e9 and b32 > 100 * tiny


def test_build_argv(tmp_path):
    cfg = resolve_train_config({"preset": "small"})
    run = plan_runs(cfg, num_experts=2, samples_per_epoch=400_000)["expert_01"]
    argv = build_argv(run, cfg, train_data="a/{00000000..00000009}.tar", run_dir=tmp_path / "e1",
                      resume="latest", device="cuda", workers=4, seed=0, precision="amp",
                      world_size=8)
    opt = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert opt["--batch-size"] == "512" and opt["--epochs"] == "32"
    assert opt["--train-num-samples"] == "400000" and opt["--resume"] == "latest"
    assert opt["--logs"] == str(tmp_path) and opt["--name"] == "e1"
    assert opt["--zeroshot-frequency"] == "0" and opt["--report-to"] == ""
    for flag in ("--dataset-resampled", "--local-loss", "--gather-with-grad", "--grad-checkpointing"):
        assert flag in argv
    with pytest.raises(ConfigError, match="batch_size"):
        build_argv(run, cfg, train_data="x", run_dir=tmp_path, resume=None, device="cuda",
                   workers=1, seed=0, precision="amp", world_size=3)


def test_cpu_jobs_leave_a_core_per_data_worker_and_set_the_shuffle_buffer():
    demo = resolve_train_config({})
    assert entry_options(demo, gpus=0, threads=2) == ["--torch-threads", "1", "--sample-shuffle", "1000"]
    assert entry_options(demo, gpus=0, threads=1) == ["--torch-threads", "1", "--sample-shuffle", "1000"]
    assert entry_options(demo, gpus=8, threads=9) == ["--sample-shuffle", "1000"]  # compute on the GPUs
    assert entry_options(resolve_train_config({"preset": "small"}), gpus=8, threads=9) == []
    _, options, rest = parse_entry_argv(["--schedule-epochs", "8", "--resume-epoch", "0", "--run-epochs", "6",
                                      "--torch-threads", "3", "--sample-shuffle", "500", "--", "--lr", "1"])
    assert (options.torch_threads, options.sample_shuffle, rest) == (3, 500, ["--lr", "1"])


def test_launcher_argv_cpu_one_node_and_slurm_nodes():
    assert launcher_argv(0, 1, {}) == [sys.executable, "-m", "modeflow.train.entry"]
    one = launcher_argv(8, 1, {})
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert one[3:] == ["--standalone", "--nproc-per-node", "8", "-m", "modeflow.train.entry"]
    env = {"SLURM_JOB_NODELIST": "gpu[07-10]", "SLURM_JOB_ID": "4242"}
    many = launcher_argv(8, 4, env)
    assert many[:5] == ["srun", "--nodes", "4", "--ntasks-per-node", "1"]
    text = " ".join(many)
    assert "--nnodes 4 --nproc-per-node 8" in text and "--rdzv-backend c10d" in text
    assert "--rdzv-id 4242" in text and "--rdzv-endpoint gpu07:29500" in text
    assert many[-2:] == ["-m", "modeflow.train.entry"]
    assert "--rdzv-endpoint head:1234" in " ".join(
        launcher_argv(8, 4, {**env, "MASTER_ADDR": "head", "MASTER_PORT": "1234"}))
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        launcher_argv(8, 4, {})


def test_first_slurm_host_without_scontrol():
    assert first_slurm_host("node[03-05,09],gpu7") == "node03"
    assert first_slurm_host("a1,b2") == "a1"
    assert first_slurm_host("single") == "single"


def test_samples_per_epoch_of_each_run(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"output_samples": 1234}))
    kept = resolve_train_config({"samples_per_epoch": None})
    assert run_samples_per_epoch("seed", kept, data_dir=tmp_path) == 1234
    assert run_samples_per_epoch("seed", resolve_train_config({}), data_dir=tmp_path) == 5000
    # every other run keeps the seed's, whatever its own data
    seed_meta = tmp_path / "seed.json"
    seed_meta.write_text(json.dumps({"samples_per_epoch": 777}))
    for name in ("expert_01", "dense"):
        assert run_samples_per_epoch(name, kept, data_dir=tmp_path / "none", seed_meta=seed_meta) == 777
    with pytest.raises(ConfigError, match="seed meta"):
        run_samples_per_epoch("expert_00", kept, data_dir=tmp_path)


# What modeflow.train.entry patches (PATCHED) or calls from a patch, as the pinned open_clip_train
# (open-clip-torch 3.3.0, webdataset 0.2.86) has them: a callable's signature, a constant's type.
UPSTREAM_SIGNATURES = {
    "open_clip_train.main.cosine_lr": "(optimizer, base_lr, warmup_length, steps)",
    "open_clip_train.main.create_loss": "(args)",
    "webdataset.shuffle": "(data, bufsize=1000, initial=100, rng=None, handler=None)",
    "open_clip_train.data.ResampledShards2":
        f"(urls, weights=None, nshards={sys.maxsize}, worker_seed=None, deterministic=False, epoch=-1)",
    "open_clip_train.data._SAMPLE_SHUFFLE_SIZE": "int",
    "open_clip_train.data._SAMPLE_SHUFFLE_INITIAL": "int",
    "open_clip_train.data.pytorch_worker_seed": "(increment=0)",
    "open_clip_train.data.SharedEpoch.get_value": "(self)",
}


def _upstream(dotted: str):
    """The object at `dotted` (a module path, then attributes), or None if there is none."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
        return obj
    return None


def test_open_clip_train_patches_match_the_installed_version():
    unrecorded = {target for target, _ in PATCHED} - set(UPSTREAM_SIGNATURES)
    assert not unrecorded, f"record the upstream signature of each new patch: {sorted(unrecorded)}"
    problems = []
    for target, recorded in UPSTREAM_SIGNATURES.items():
        obj = _upstream(target)
        got = None if obj is None else (str(inspect.signature(obj)) if callable(obj) else type(obj).__name__)
        if got != recorded:
            problems.append(f"{target}: {'gone' if obj is None else got}, recorded {recorded}")
    for target, caller in PATCHED:
        # a patch only works while the caller looks the name up when it runs
        attribute, code = target.rsplit(".", 1)[1], getattr(_upstream(caller), "__code__", None)
        if code is None or attribute not in code.co_names:
            problems.append(f"{caller} no longer reads {attribute}: replacing {target} changes nothing")
    versions = {name: importlib.metadata.version(name) for name in ("open-clip-torch", "webdataset")}
    assert not problems, (
        f"installed {versions}: not what modeflow.train.entry's patches were written for "
        "(open-clip-torch 3.3.0, webdataset 0.2.86):\n  " + "\n  ".join(problems) +
        "\nreview each patch (the block at the top of src/modeflow/train/entry.py) against the new "
        "version, then update UPSTREAM_SIGNATURES")


def test_parse_log_keeps_the_rerun_of_a_killed_epoch(tmp_path):
    line = ("2026-01-01,00:00:0{t} | INFO | Train Epoch: {e} [{n}/64 (50%)] Data (t): 0.0 Batch (t): "
            "0.1, 10.0/s, 10.0/s/gpu LR: {lr} Logit Scale: 14.0 Contrastive_loss: {l} (1.0) "
            "Loss: {l} (1.0)")
    log = tmp_path / "out.log"
    log.write_text("\n".join([
        line.format(t=1, e=2, n=32, lr="0.000100", l="4.5"),
        line.format(t=2, e=2, n=64, lr="0.000200", l="4.4"),
        "2026-01-01,00:00:03 | INFO | Start epoch 3",
        line.format(t=4, e=3, n=32, lr="0.000300", l="nan"),   # killed here, rerun below
        line.format(t=5, e=3, n=32, lr="0.000300", l="4.3"),
        line.format(t=6, e=3, n=64, lr="0.000050", l="4.2"),
    ]) + "\n")
    rows = parse_log(log)
    assert [(r["epoch"], r["step"], r["samples"]) for r in rows] == \
        [(2, 4, 160), (2, 5, 192), (3, 6, 224), (3, 7, 256)]
    assert [r["loss"] for r in rows] == [4.5, 4.4, 4.3, 4.2]
    assert rows[-1]["lr"] == 5e-5


# --- real training runs ---------------------------------------------------------------------

def test_seed_trains_S_epochs_and_expert_resumes_from_it(seed_run, shards, tmp_path, caplog):
    meta = seed_run["meta"]
    assert train_lines(seed_run["run_dir"] / "out.log")[0] == 0
    assert sorted(set(train_lines(seed_run["run_dir"] / "out.log"))) == [0, 1]
    assert checkpoint_epoch(seed_run["checkpoint"]) == 2
    assert (meta["epochs_trained"], meta["resume_epoch"], meta["samples_seen"]) == (2, 0, 128)
    assert meta["final_loss"] is not None and math.isfinite(meta["final_loss"])
    assert "optimizer" in torch.load(seed_run["checkpoint"], weights_only=False)  # experts resume

    cfg = seed_run["cfg"]
    with caplog.at_level(logging.INFO, logger="modeflow"):
        emeta = run_training("expert_01", cfg, train_tars=shards[1:], init_checkpoint=seed_run["checkpoint"],
                             run_dir=tmp_path / "runs" / "expert_01", out_checkpoint=tmp_path / "e1.pt",
                             out_meta=tmp_path / "e1.json", num_experts=2, samples_per_epoch=64,
                             sink=io.StringIO())
    # open_clip_train's own "No pretrained weights loaded" line is not the whole story: ours names
    # the checkpoint the expert starts from
    assert f"expert_01: starting from {Path(seed_run['checkpoint']).resolve()} (epoch 2)" in caplog.text
    curve = emeta["curve"]
    assert curve[0]["epoch"] == 2 and curve[0]["step"] == 4  # continues the seed's step count
    assert (emeta["resume_epoch"], emeta["epochs_trained"]) == (2, 1)
    # lr continuous: the expert's first step follows the seed's last on the same 3-epoch cosine
    kw = dict(base_lr=cfg["lr"], warmup_steps=2, steps_per_epoch=2, schedule_epochs=3)
    assert curve[0]["lr"] == pytest.approx(schedule_lr(4, resume_epoch=2, run_epochs=1, **kw), abs=1e-6)
    assert meta["curve"][-1]["lr"] == pytest.approx(schedule_lr(3, resume_epoch=0, run_epochs=2, **kw),
                                                    abs=1e-6)
    assert checkpoint_epoch(tmp_path / "e1.pt") == 3
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=str(tmp_path / "e1.pt"))
    expert_sd = torch.load(tmp_path / "e1.pt", weights_only=False)["state_dict"]
    assert torch.equal(model.state_dict()["logit_scale"], expert_sd["logit_scale"])
    clip, _, tokenizer = load_clip(MODEL, tmp_path / "e1.pt")
    with torch.no_grad():
        features = clip.encode_text(tokenizer(["a red circle"]))
    assert features.shape == (1, 64) and torch.isfinite(features).all()


def test_rerun_resumes_after_a_kill_and_moves_a_truncated_checkpoint_aside(seed_run, shards, tmp_path):
    # What a kill during the save of epoch 2 leaves: a good epoch_1.pt and a truncated epoch_2.pt
    run_dir = tmp_path / "runs" / "seed"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(seed_run["run_dir"] / "checkpoints" / "epoch_1.pt", run_dir / "checkpoints")
    full = (seed_run["run_dir"] / "checkpoints" / "epoch_2.pt").read_bytes()
    (run_dir / "checkpoints" / "epoch_2.pt").write_bytes(full[: len(full) // 2])
    shutil.copy(seed_run["run_dir"] / "out.log", run_dir / "out.log")

    sink = io.StringIO()
    meta = run_training("seed", seed_run["cfg"], train_tars=shards, init_checkpoint=None,
                        run_dir=run_dir, out_checkpoint=tmp_path / "seed.pt",
                        out_meta=tmp_path / "seed.json", num_experts=2, samples_per_epoch=64,
                        sink=sink)
    corrupt = run_dir / "checkpoints" / "epoch_2.pt.corrupt"
    assert corrupt.read_bytes() == full[: len(full) // 2]  # kept, not deleted
    assert "resuming checkpoint" in sink.getvalue() and "epoch_1.pt' (epoch 1)" in sink.getvalue()
    new_lines = sink.getvalue().split("Start epoch")[1:]
    assert [chunk.split()[0] for chunk in new_lines] == ["1"]  # only the lost epoch is retrained
    assert checkpoint_epoch(tmp_path / "seed.pt") == 2
    assert meta["curve"][0]["epoch"] == 0  # the log kept the first run's epoch 0
    assert latest_good_checkpoint(run_dir / "checkpoints") == run_dir / "checkpoints" / "epoch_2.pt"
    # the resumed epoch drew the same samples and augmentations as in the uninterrupted run
    uninterrupted = read_checkpoint(seed_run["checkpoint"])["state_dict"]
    resumed = read_checkpoint(tmp_path / "seed.pt")["state_dict"]
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_truncated_checkpoint_is_a_clear_error(seed_run, tmp_path):
    bad = tmp_path / "epoch_9.pt"
    bad.write_bytes(seed_run["checkpoint"].read_bytes()[:1000])
    with pytest.raises(CorruptCheckpointError, match="epoch_9.pt"):
        load_clip(MODEL, bad)
    with pytest.raises(InputDataError, match="nothere.pt"):
        load_clip(MODEL, tmp_path / "nothere.pt")
    assert latest_good_checkpoint(tmp_path) is None
    assert (tmp_path / "epoch_9.pt.corrupt").exists()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(seed_run, shards, tmp_path):
    run_dir = tmp_path / "runs" / "seed"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(seed_run["run_dir"] / "checkpoints" / "epoch_1.pt", run_dir / "checkpoints")
    cfg = tiny_cfg(lr=1e30)
    with pytest.raises(TrainingFailedError) as err:
        run_training("seed", cfg, train_tars=shards, init_checkpoint=None, run_dir=run_dir,
                     out_checkpoint=tmp_path / "seed.pt", out_meta=tmp_path / "seed.json",
                     num_experts=2, samples_per_epoch=64, sink=io.StringIO())
    message = str(err.value)
    assert "exit 3" in message and "loss became nan at step" in message
    assert f"last good checkpoint: {run_dir / 'checkpoints' / 'epoch_1.pt'}" in message
    assert "lower the lr" in message
    assert not (tmp_path / "seed.pt").exists() and not (run_dir / "checkpoints" / "epoch_2.pt").exists()
    load_clip(MODEL, run_dir / "checkpoints" / "epoch_1.pt")


def test_entry_exit_code_on_nan(seed_run, shards, tmp_path):
    argv = [sys.executable, "-m", "modeflow.train.entry", "--schedule-epochs", "3",
            "--resume-epoch", "2", "--run-epochs", "1", "--",
            "--model", MODEL, "--train-data", "::".join(map(str, shards)),
            "--dataset-type", "webdataset", "--dataset-resampled", "--train-num-samples", "64",
            "--batch-size", "32", "--epochs", "3", "--lr", "1e30", "--warmup", "0",
            "--logs", str(tmp_path), "--name", "nan", "--report-to", "", "--device", "cpu",
            "--precision", "fp32", "--workers", "0", "--zeroshot-frequency", "0",
            "--resume", str(seed_run["checkpoint"])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    ours = [line for line in proc.stderr.splitlines() if line.startswith("modeflow: ")]
    # step 4 (the first after the seed) still has the seed's weights; its 1e30 update breaks step 5
    assert len(ours) == 1 and ours[0].startswith("modeflow: loss became nan at step 5 (epoch 2)")
    assert f"last good checkpoint: {seed_run['checkpoint']}" in ours[0]


def test_checkpoint_of_another_architecture_is_refused(seed_run, shards, tmp_path):
    # a tiny ViT trained with 77-token captions: every tensor fits but the text positions
    ckpt = torch.load(seed_run["checkpoint"], weights_only=False)
    ckpt["state_dict"]["positional_embedding"] = torch.zeros(77, 64)
    bad = tmp_path / "other.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointMismatchError,
                       match=r"other\.pt.*modeflow-tiny-vit.*first offending key 'positional_embedding'"):
        load_clip(MODEL, bad)
    ckpt["state_dict"]["extra.weight"] = torch.zeros(2)
    ckpt["state_dict"].pop("positional_embedding")
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointMismatchError, match="missing key.*'positional_embedding'"):
        check_fits(MODEL, bad)
    with pytest.raises(CheckpointMismatchError, match="other.pt"):
        run_training("expert_00", seed_run["cfg"], train_tars=shards, init_checkpoint=bad,
                     run_dir=tmp_path / "runs" / "expert_00", out_checkpoint=tmp_path / "e0.pt",
                     out_meta=tmp_path / "e0.json", num_experts=2, samples_per_epoch=64,
                     sink=io.StringIO())
    assert not (tmp_path / "runs" / "expert_00" / "out.log").exists()  # never launched
    check_fits(MODEL, seed_run["checkpoint"])  # the right one passes


def test_a_run_dir_from_other_inputs_is_moved_aside_not_resumed(seed_run, shards, tmp_path):
    """Rerunning with another recipe (here: another architecture, in a run dir without a
    fingerprint, as older versions left them) must train anew, never republish stale checkpoints."""
    run_dir = tmp_path / "runs" / "seed"
    shutil.copytree(seed_run["run_dir"] / "checkpoints", run_dir / "checkpoints")  # no fingerprint.json
    cfg = tiny_cfg(model="modeflow-tiny-resnet", schedule_epochs=2, seed_epochs=1)
    run_training("seed", cfg, train_tars=shards, init_checkpoint=None, run_dir=run_dir,
                 out_checkpoint=tmp_path / "seed.pt", out_meta=tmp_path / "seed.json", num_experts=2,
                 samples_per_epoch=64, sink=io.StringIO())
    load_clip("modeflow-tiny-resnet", tmp_path / "seed.pt")  # trained anew for the new model
    [aside] = (tmp_path / "runs" / "superseded").glob("seed.*.other-model/checkpoints/epoch_2.pt")
    assert aside.read_bytes() == (seed_run["run_dir"] / "checkpoints" / "epoch_2.pt").read_bytes()
    # the same recipe again resumes (its fingerprint matches): nothing is retrained
    sink = io.StringIO()
    run_training("seed", cfg, train_tars=shards, init_checkpoint=None, run_dir=run_dir,
                 out_checkpoint=tmp_path / "again.pt", out_meta=tmp_path / "again.json",
                 num_experts=2, samples_per_epoch=64, sink=sink)
    assert "Start epoch" not in sink.getvalue()
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "seed.pt").read_bytes()


def test_training_is_deterministic_for_a_fixed_seed(seed_run, shards, tmp_path):
    """webdataset seeds its sample shuffle from the pid and the clock; the entry seeds it from
    torch's per-worker seed, so a second run of the same recipe gives the same weights."""
    run_training("seed", seed_run["cfg"], train_tars=shards, init_checkpoint=None, run_dir=tmp_path / "seed",
                 out_checkpoint=tmp_path / "seed.pt", out_meta=tmp_path / "seed.json", num_experts=2,
                 samples_per_epoch=64, sink=io.StringIO())
    first = read_checkpoint(seed_run["checkpoint"])["state_dict"]
    again = read_checkpoint(tmp_path / "seed.pt")["state_dict"]
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
