"""End to end: the real snakemake CLI on a tiny demo config, as a user runs it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, job_stats, run_snakemake, write_config
from modeflow.common.names import expert_model

pytestmark = pytest.mark.e2e


def tar_contents(path: Path) -> list[tuple[str, bytes]]:
    """Member names and bytes; tar headers (mtimes) differ between runs and are not content."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def result_contents(results: Path) -> dict[str, object]:
    """Everything a downstream step reads, keyed by relative path, in comparable form."""
    out: dict[str, object] = {}
    for path in sorted((results / "shards").glob("*/*")):
        if path.suffix == ".tar":
            out[path.name] = tar_contents(path)
        elif path.suffix == ".parquet":
            out[path.name] = pq.read_table(path).to_pylist()
    for path in sorted((results / "embed").iterdir()):
        out[path.name] = np.load(path).tobytes() if path.suffix == ".npy" else pq.read_table(path).to_pylist()
    for path in sorted((results / "cluster").glob("*.npy")):
        out[f"cluster/{path.name}"] = np.load(path).tobytes()
    for path in sorted((results / "cluster" / "assign").glob("*.parquet")):
        out[f"assign/{path.name}"] = pq.read_table(path).to_pylist()
    for path in sorted((results / "filter" / "subsets").glob("*.npy")):
        out[f"subsets/{path.name}"] = np.load(path).tolist()
    for path in sorted((results / "experts").glob("*/*")):
        key = f"experts/{path.parent.name}/{path.name}"
        if path.suffix == ".tar":
            out[key] = tar_contents(path)
        elif path.suffix == ".npy":
            out[key] = np.load(path).tolist()
    return out


def test_dry_run_plans_every_stage(tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_snakemake(tmp_path, "-n", "all", configfile=config)
    jobs = job_stats(proc.stdout)
    for rule, count in [("demo_pool", 1), ("pool_table", 1), ("download", 3), ("embed", 3), ("download_summary", 1),
                        ("cluster_fit", 1), ("assign", 3), ("filter_attributes", 3), ("subset", 6),
                        ("reshard_part", 3), ("reshard_expert", 4), ("reshard_summary", 1),
                        # the seed's pooled data (basic_dedup) and the dense model's (basic_dedup_clip)
                        ("reshard_pooled_part", 6), ("reshard_pooled", 2), ("clip_score", 3),
                        # the control arms (the demo runs both): the random split's one partition job,
                        # its index per chunk and shards per expert
                        ("random_split", 1), ("reshard_random_part", 3), ("reshard_random_expert", 4),
                        # seed, 4 experts, dense, dense_1x, 4 random-split experts
                        ("train", 11), ("evaluate", 11), ("ensemble_weights", 1), ("ensemble", 1),
                        ("results_report", 1), ("health_report", 1), ("ensemble_demo_checks", 1)]:
        assert jobs.get(rule) == count, (rule, jobs)
    assert not (tmp_path / "results").exists()


def test_full_run_outputs_are_consistent(finished_run):
    workdir, _ = finished_run
    results = workdir / "results"
    summary_rows = 0
    for shard in ("00000", "00001", "00002"):
        vectors = np.load(results / "embed" / f"{shard}.npy")
        uids = pq.read_table(results / "embed" / f"{shard}.parquet").column("uid").to_pylist()
        members = [name for name, _ in tar_contents(results / "shards" / shard / f"{shard}.tar")]
        assert vectors.shape == (len(uids), 384) and vectors.dtype == np.float32
        assert len(uids) == len({n.split(".")[0] for n in members}) > 0
        table = pq.read_table(results / "shards" / shard / f"{shard}.parquet")
        summary_rows += table.num_rows
    assert summary_rows == 300  # every pool row accounted for, failures included
    assert (results / "download" / "summary.png").stat().st_size > 0
    # the report builds and embeds the download summary
    run_snakemake(workdir, "--report", str(workdir / "report.html"), configfile=finished_run[1])
    assert (workdir / "report.html").stat().st_size > 10_000


def test_rerun_is_a_no_op(finished_run):
    workdir, config = finished_run
    proc = run_snakemake(workdir, "-n", "all", configfile=config)
    assert "Nothing to be done" in proc.stdout + proc.stderr


# the two orders the outputs follow (report rows, task columns): reordering them is a real change
ORDERED = ("filter.subsets", "pool.demo.domains")


def _reversed_keys(node, path=""):
    if not isinstance(node, dict):
        return node
    keys = list(node) if path in ORDERED else reversed(list(node))
    return {k: _reversed_keys(node[k], f"{path}.{k}".lstrip(".")) for k in keys}


def test_an_edit_that_keeps_every_value_reruns_nothing(finished_run):
    """Every key reordered, and every default written out: the resolved values are the same, so
    no job's params change and nothing (above all no download) runs again."""
    from modeflow.config import validate_config

    workdir, config = finished_run
    explicit = workdir / "explicit.yaml"
    filled = validate_config(yaml.safe_load(config.read_text()))
    explicit.write_text(yaml.safe_dump(_reversed_keys(filled), sort_keys=False))
    proc = run_snakemake(workdir, "-n", "all", configfile=explicit)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_single_embedding_target_runs_only_what_it_needs(tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_snakemake(tmp_path, "-n", "results/embed/00001.npy", configfile=config)
    jobs = job_stats(proc.stdout)
    assert jobs == {"demo_pool": 1, "pool_table": 1, "download": 1, "embed": 1, "total": 4}


# Where the fault-injection test kills the run: once the stage's first file exists, after a seeded
# random delay, so the kill lands somewhere inside the stage rather than at its edge.
KILL_POINTS = (
    ("download", "download/staging/*/input/*.parquet"),
    ("reshard", "reshard/index/*.parquet"),
    ("training", "train/runs/expert_*/out.log"),
    ("evaluation", "eval_work/*/results.jsonl"),
)


def _run_until_killed(workdir: Path, config: Path, marker: str, delay: float) -> bool:
    """Start the whole pipeline and SIGKILL its process tree (scheduler, jobs, img2dataset and
    training workers) as a node failure would. False if the run ended before the marker appeared."""
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           f"--configfile={config}", "--rerun-incomplete", "all"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not list((workdir / "results").glob(marker)):
        time.sleep(0.1)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


WALL_CLOCK_KEYS = ("time", "batch_time")  # seconds measured on a shared machine, not outputs


def _curves_and_arms(results: Path) -> dict[str, object]:
    """Each model's loss/lr curve (wall-clock fields dropped) and every arm's metrics per task."""
    out: dict[str, object] = {
        f"models/{p.name}": [
            {k: v for k, v in point.items() if k not in WALL_CLOCK_KEYS}
            for point in json.loads(p.read_text())["curve"]
        ]
        for p in sorted((results / "models").glob("*.json"))
    }
    for line in (results / "ensemble" / "arms.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[f"arms/{row['task']}/{row['arm']}"] = row
    return out


def test_killed_at_random_moments_resumes_to_identical_outputs(finished_run, tmp_path):
    """Fault injection: SIGKILL inside download, reshard, training and evaluation (seeded random
    moments), rerun after each kill; the outputs equal the uninterrupted run's. Without the control
    arms, which the shared run trains and which only add jobs of the same kinds (and the claims
    that compare with them): every model and arm of this run must equal the shared run's."""
    reference, _ = finished_run
    config = write_config(tmp_path / "tiny.yaml", {"train.control_arms": []})
    rng = random.Random(12)
    killed = []
    for stage, marker in KILL_POINTS:
        if _run_until_killed(tmp_path, config, marker, delay=rng.uniform(0.0, 1.5)):
            killed.append(stage)
        # A killed snakemake leaves its lock behind: the user unlocks, then reruns the same command.
        run_snakemake(tmp_path, "--unlock", configfile=config)
    assert killed[:1] == ["download"], f"the run was not interrupted as planned: killed in {killed}"
    run_snakemake(tmp_path, "--rerun-incomplete", "all", configfile=config)
    assert result_contents(tmp_path / "results") == result_contents(reference / "results")
    resumed, uninterrupted = _curves_and_arms(tmp_path / "results"), _curves_and_arms(reference / "results")
    assert {key: uninterrupted.get(key) for key in resumed} == resumed
    assert len(resumed) > 60  # 7 models' curves, 9+ arms on 6 tasks
    assert len(killed) >= 3, f"only {killed} were interrupted"


def test_config_typo_stops_before_any_work(tmp_path):
    config = write_config(tmp_path / "bad.yaml", {"download.shard_sise": 10})
    proc = run_snakemake(tmp_path, "-n", "all", configfile=config, check=False)
    assert proc.returncode != 0
    assert "unknown config key 'download.shard_sise' (did you mean 'shard_size'?)" in proc.stdout + proc.stderr


def test_curation_outputs_speak_datacomp_and_open_clip(finished_run):
    """Subsets load with DataComp's recipe; every kept uid is in exactly one expert; the expert
    shards read back with webdataset and with open_clip_train's own loader (meta.json pattern)."""
    import json

    import webdataset as wds

    workdir, _ = finished_run
    results = workdir / "results"
    subset = np.load(results / "filter" / "subsets" / "basic_dedup_clip.npy")  # filter.use
    assert subset.dtype == np.dtype("u8,u8") and len(subset) > 0
    # the clip_score filter (scored by the seed model) removed something that basic ∩ dedup kept
    assert len(subset) < len(np.load(results / "filter" / "subsets" / "basic_dedup.npy"))
    assert subset.tolist() == sorted(subset.tolist())

    in_cluster = []
    for expert in ("00", "01", "02", "03"):
        meta = json.loads((results / "experts" / expert / "meta.json").read_text())
        pattern = str(results / "experts" / expert / meta["shard_pattern"])
        samples = list(wds.WebDataset(pattern, shardshuffle=False))
        assert len(samples) == meta["output_samples"] > 0
        uids = [json.loads(s["json"])["uid"] for s in samples]
        assert all("jpg" in s and "txt" in s for s in samples)
        ooc = meta["ooc_samples"]
        assert len(uids) - ooc == meta["in_cluster_samples"]
        in_cluster.append(meta["in_cluster_samples"])
    assert sum(in_cluster) == len(subset)  # every kept uid once, in exactly one expert

    # open_clip_train rounds an epoch up to whole batches (of 4 here), so it may read a few twice
    meta = json.loads((results / "experts" / "00" / "meta.json").read_text())
    assert _read_with_open_clip_train(results / "experts" / "00") == -(-meta["output_samples"] // 4) * 4


def _read_with_open_clip_train(expert_dir: Path) -> int:
    import argparse
    import json

    import open_clip
    from open_clip_train.data import get_wds_dataset
    from torchvision import transforms

    meta = json.loads((expert_dir / "meta.json").read_text())
    args = argparse.Namespace(
        train_data=str(expert_dir / meta["shard_pattern"]), train_num_samples=meta["output_samples"],
        dataset_resampled=False, seed=0, batch_size=4, workers=0, world_size=1, distributed=False,
        rank=0, train_data_upsampling_factors=None)
    preprocess = transforms.Compose([transforms.Resize(32), transforms.ToTensor()])
    data = get_wds_dataset(args, preprocess, is_train=True, epoch=0,
                           tokenizer=open_clip.get_tokenizer("ViT-B-32"))
    return sum(images.shape[0] for images, _ in data.dataloader)


def _datacomp_train_data(data_dir: Path) -> str:
    """What DataComp's train.py (get_input_shards, the "Handle folders" branch) passes as
    --train-data for a directory of resharder outputs: per subfolder with a meta.json, the brace
    pattern from its `output_shard_count` and `output_shard_format`, joined by "::". Written from
    that function, not imported: DataComp is not a dependency."""
    parts = []
    for sub in sorted(data_dir.iterdir()):
        meta_file = sub / "meta.json"
        if sub.is_dir() and meta_file.exists():
            meta = json.loads(meta_file.read_text())
            count, fmt = meta["output_shard_count"], meta["output_shard_format"]
            first, last = fmt.format(0).replace(".tar", ""), fmt.format(count - 1).replace(".tar", "")
            parts.append(str(sub / f"{{{first}..{last}}}.tar"))
    return "::".join(parts)


def test_datacomp_train_py_reads_the_expert_directories(finished_run):
    """An expert directory is a DataComp training directory: its meta.json carries the keys
    DataComp's train.py reads, and the shards they name are exactly the expert's."""
    from braceexpand import braceexpand

    results = finished_run[0] / "results"
    train_data = _datacomp_train_data(results / "experts")
    patterns = train_data.split("::")
    assert len(patterns) == len(list((results / "experts").iterdir()))
    for pattern in patterns:
        expert = Path(pattern).parent
        assert sorted(braceexpand(pattern)) == sorted(str(p) for p in expert.glob("*.tar"))


def test_single_expert_target_and_forced_stage(finished_run, tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_snakemake(tmp_path, "-n", "results/experts/02", configfile=config)
    jobs = job_stats(proc.stdout)
    assert jobs["reshard_expert"] == 1 and "reshard_summary" not in jobs and "cluster_summary" not in jobs

    workdir, config = finished_run
    proc = run_snakemake(workdir, "-n", "-R", "cluster_fit", "--until", "cluster_fit", configfile=config)
    jobs = job_stats(proc.stdout)
    assert jobs == {"cluster_fit": 1, "total": 1}


def test_experts_stage_outputs(finished_run):
    """Checkpoints load with open_clip; every model is evaluated on every task; the ensemble table
    has every arm, the weights are distributions, the demo checks and report items exist."""
    import csv
    import json

    import open_clip

    from modeflow.train.architectures import register_model_configs

    results = finished_run[0] / "results"
    register_model_configs()
    models = ["seed", "expert_00", "expert_01", "expert_02", "expert_03", "dense"]
    tasks = ["shapes", "digits", "textures", "arrows", "mixed", "retrieval"]
    for model in models:
        meta = json.loads((results / "models" / f"{model}.json").read_text())
        assert meta["samples_seen"] > 0 and meta["curve"]
        metrics = json.loads((results / "eval" / model / "metrics.json").read_text())
        assert sorted(r["dataset"] for r in metrics["tasks"]) == sorted(tasks)
    model_name = json.loads((results / "models" / "expert_02.json").read_text())["model"]
    open_clip.create_model_and_transforms(model_name, pretrained=str(results / "models" / "expert_02.pt"))
    seed, dense = (json.loads((results / "models" / f"{m}.json").read_text()) for m in ("seed", "dense"))
    experts = [json.loads((results / "models" / f"{expert_model(e)}.json").read_text()) for e in range(4)]
    assert dense["samples_seen"] == sum(e["samples_seen"] for e in experts)  # equal compute
    assert all(e["resume_epoch"] == seed["stop_epoch"] for e in experts)

    with open(results / "ensemble" / "summary.csv", newline="") as fh:
        rows = {row["arm"]: row for row in csv.DictReader(fh)}
    for arm in ["mode", "mode_paper", "uniform", "top1", "oracle", "seed", "dense", "expert_00"]:
        assert any(name.startswith(arm) for name in rows), (arm, list(rows))
    weights = json.loads((results / "ensemble" / "routing" / "weights.json").read_text())
    for task in tasks:
        assert abs(sum(weights[task]["mode"]) - 1) < 1e-6 and abs(sum(weights[task]["mode_paper"]) - 1) < 1e-6
    checks = json.loads((results / "ensemble" / "demo_checks.json").read_text())
    assert set(checks["domain_tasks"]) == {"shapes", "digits", "textures", "arrows"}
    for item in ("summary.html", "weights.png", "accuracy.png"):
        assert (results / "ensemble" / item).stat().st_size > 0
    assert (results / "train" / "curves.png").stat().st_size > 0
