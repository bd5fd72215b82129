"""The Slurm profile on a real (single-node) Slurm cluster: every job goes through sbatch, the
outputs equal a local run's, and a wrong partition stops the run at its first submission."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_snakemake, write_config
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e

TARGET = "results/reshard/summary.json"
# Two chunks of 100 (each group still gathers several jobs), fewer jobs than the default tiny pool.
SMALL_POOL = {"pool.demo.num_samples": 200, "download.shard_size": 100}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
# Fast polling for a tiny run (the profile's default suits a real scheduler); keep the jobs' logs.
FAST = ("--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs")


def random_scorer(path: Path) -> Path:
    """An untrained open_clip checkpoint: clip_score (a GPU rule) runs without training first."""
    import open_clip
    import torch

    from modeflow.models import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("modeflow-tiny-vit", pretrained=None)
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def tiny_config(workdir: Path, scorer: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return write_config(workdir / "tiny.yaml", {
        **SMALL_POOL,
        "filter.subsets.clip_score.checkpoint": str(scorer),
        "filter.subsets.clip_score.model": "modeflow-tiny-vit",
        "evaluate.gpus": 1,  # the GPU rules (clip_score here) request one GPU (device auto: the CPU)
    })


def use_cluster(monkeypatch, cluster: SlurmCluster) -> None:
    """Point the snakemake the tests start (and the jobs it submits) at the test cluster."""
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.setenv("PATH", cluster.env["PATH"])


def curation_outputs(results: Path) -> dict[str, bytes]:
    """What the curation stages hand to training, as comparable bytes."""
    out = {"reshard/summary.json": json.dumps(json.loads((results / TARGET.removeprefix("results/")).read_text()),
                                              sort_keys=True).encode()}
    for path in sorted((results / "filter" / "subsets").glob("*.npy")):
        out[f"subsets/{path.name}"] = np.load(path).tobytes()
    for path in sorted((results / "experts").glob("*/sample_ids.npy")):
        out[f"experts/{path.parent.name}/sample_ids.npy"] = np.load(path).tobytes()
    return out


def test_profile_runs_every_job_through_sbatch_like_a_local_run(slurm_cluster, tmp_path, monkeypatch):
    scorer = random_scorer(tmp_path / "scorer.pt")
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    run_snakemake(local_dir, TARGET, configfile=tiny_config(local_dir, scorer))

    use_cluster(monkeypatch, slurm_cluster)
    before = set(slurm_cluster.submitted_job_ids())
    proc = run_snakemake(slurm_dir, "--profile", str(REPO / "profiles" / "slurm"), *FAST, TARGET,
                         configfile=tiny_config(slurm_dir, scorer))
    log = proc.stdout + proc.stderr

    job_ids = SUBMITTED.findall(log)
    accepted = set(slurm_cluster.submitted_job_ids()) - before
    assert job_ids and len(set(job_ids)) == len(job_ids)
    assert set(job_ids) == accepted, "snakemake's submissions and slurmctld's accepted jobs differ"

    jobs = {job_id: slurm_cluster.job(job_id) for job_id in job_ids}
    assert all(job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs.values()), jobs
    by_comment = {job["Comment"]: job for job in jobs.values()}
    # every rule ran inside a Slurm job, the per-chunk stages as one group job each
    for rule in ("demo_pool", "pool_table", "cluster_fit", "subset", "reshard_expert", "reshard_summary"):
        assert any(comment.startswith(f"rule_{rule}") for comment in by_comment), (rule, sorted(by_comment))
    for group, rule in [("download", "download"), ("embed", "embed"), ("filter", "filter_attributes"),
                        ("assign", "assign"), ("reshard", "reshard_part"), ("clip_score", "clip_score")]:
        assert f"rule_{group}_{rule}" in by_comment, (group, sorted(by_comment))
    finished = len(re.findall(r"^Finished jobid: ", log, flags=re.MULTILINE))
    assert finished > len(job_ids)  # groups: fewer submissions than jobs

    # GPU steps on the gpu partition with one (fake) GPU, everything else on the default partition
    gpu_jobs = [job for comment, job in by_comment.items() if comment.startswith("rule_clip_score")]
    assert len(gpu_jobs) == 1 and gpu_jobs[0]["Partition"] == "gpu"
    assert "gres:gpu:1" in gpu_jobs[0].get("TresPerJob", ""), gpu_jobs[0]
    assert {job["Partition"] for job in jobs.values() if job not in gpu_jobs} == {"cpu"}

    assert curation_outputs(slurm_dir / "results") == curation_outputs(local_dir / "results")


def test_unknown_partition_stops_the_run_at_the_first_submission(slurm_cluster, tmp_path, monkeypatch):
    profile = tmp_path / "profile"
    profile.mkdir()
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    assert "&cpu_partition cpu\n" in text  # the one place a user edits
    (profile / "config.yaml").write_text(text.replace("&cpu_partition cpu\n", "&cpu_partition nosuchpart\n"))

    use_cluster(monkeypatch, slurm_cluster)
    before = slurm_cluster.submitted_job_ids()
    config = write_config(tmp_path / "tiny.yaml", SMALL_POOL)
    proc = run_snakemake(tmp_path, "--profile", str(profile), *FAST, TARGET, configfile=config,
                         check=False, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "SLURM sbatch failed" in log and "invalid partition specified: nosuchpart" in log, log[-3000:]
    assert "-p nosuchpart" in log
    assert slurm_cluster.submitted_job_ids() == before  # nothing reached the queue
    assert not (tmp_path / "results" / "pool").exists()  # the run stopped at the pool's first job
