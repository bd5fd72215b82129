"""The Slurm profile on a real (single-node) Slurm cluster: every job goes through sbatch, the
outputs equal a local run's, a training job scancel-ed mid-run is retried and resumes to the same
weights, and a wrong partition stops the run at its first submission."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SNAKEMAKE, run_snakemake, write_config
from slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e

TARGET = "results/reshard/summary.json"
SEED_TARGET = "results/models/seed.pt"
SEED_RUN = "results/train/runs/seed"
# The seed trains 4 epochs of 8 steps, seconds each even on an idle machine: the scancel lands
# after epoch 1's checkpoint with three epochs to spare.
SEED_EPOCHS = 4
SEED_TRAINING = {"train.schedule_epochs": SEED_EPOCHS + 1, "train.seed_epochs": SEED_EPOCHS,
                 "train.samples_per_epoch": 256, "train.batch_size": 32}
RESUMED = re.compile(r"resuming checkpoint '[^']*epoch_(\d+)\.pt' \(epoch (\d+)\)")
# Two chunks of 100 (each group still gathers several jobs), fewer jobs than the default tiny pool.
SMALL_POOL = {"pool.demo.num_samples": 200, "download.shard_size": 100}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
# Fast polling for a tiny run (the profile's default suits a real scheduler); keep the jobs' logs.
FAST = ("--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs")


def random_scorer(path: Path) -> Path:
    """An untrained open_clip checkpoint: clip_score (a GPU rule) runs without training first."""
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

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
        **SEED_TRAINING,
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


@dataclass
class ProfileRuns:
    """A local run and a Slurm-profile run of the same targets; the seed's first Slurm job was
    scancel-ed mid-training."""

    local: Path
    slurm: Path
    log: str                   # the Slurm run's snakemake output
    job_ids: list[str]         # what snakemake submitted, in order
    accepted: set[str]         # what slurmctld accepted meanwhile
    cancelled: str             # the seed's training job that was scancel-ed
    cancelled_state: str       # its state after scancel
    epochs_at_cancel: int      # epoch checkpoints complete when it was cancelled


def seed_epochs_done(run_dir: Path) -> int:
    """Epochs whose checkpoint is complete: open_clip_train logs "Start epoch K" after saving K."""
    log = run_dir / "out.log"
    started = re.findall(r"Start epoch (\d+)", log.read_text()) if log.exists() else []
    return max(map(int, started), default=0)


def cancel_seed_mid_training(cluster: SlurmCluster, workdir: Path, proc: subprocess.Popen,
                             log_path: Path, timeout: float) -> tuple[str, str, int]:
    """Once the seed's Slurm job has saved its first epoch, scancel it; return (job id, its state
    after the cancel, epochs complete at the cancel). Fails clearly if training ends first."""
    run_dir = workdir / SEED_RUN
    deadline = time.monotonic() + timeout
    while True:
        running = cluster.jobs_with_comment("rule_train_wildcards_seed", state="RUNNING")
        if running and seed_epochs_done(run_dir) >= 1:
            break
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before the seed's Slurm job saved "
                                 f"an epoch:\n{log_path.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no running seed training job with a saved epoch after {timeout}s "
                                 f"(jobs: {cluster.squeue()}):\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    done = seed_epochs_done(run_dir)
    if done >= SEED_EPOCHS or (run_dir / "checkpoints" / f"epoch_{SEED_EPOCHS}.pt").exists():
        raise AssertionError(f"the seed had finished training ({done} epochs) before the cancel: "
                             "raise SEED_EPOCHS or train.samples_per_epoch so the cancel lands mid-run")
    job_id = running[0]["job_id"]
    return job_id, cluster.cancel(job_id), done


def slurm_run_with_a_cancel(cluster: SlurmCluster, workdir: Path, config: Path, *targets: str,
                            timeout: float = 1800) -> tuple[str, str, str, int]:
    """Run the targets through the Slurm profile (as run_snakemake does) and scancel the seed's
    training job mid-run; return (snakemake's output, cancelled job id, its state, epochs done)."""
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           f"--configfile={config}", "--profile", str(REPO / "profiles" / "slurm"), *FAST, *targets]
    log_path = workdir / "snakemake.out"
    deadline = time.monotonic() + timeout
    with log_path.open("w") as sink, subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT,
                                                      start_new_session=True) as proc:
        try:
            cancelled, state, done = cancel_seed_mid_training(cluster, workdir, proc, log_path, timeout)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            # on SIGTERM snakemake submits nothing more and waits for its running jobs to end
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    log = log_path.read_text()
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}) after the cancel of job "
                             f"{cancelled}:\n{log[-8000:]}")
    return log, cancelled, state, done


@pytest.fixture(scope="module")
def profile_runs(slurm_cluster, tmp_path_factory) -> ProfileRuns:
    """One local and one Slurm run of curation and the seed's training, shared by the tests below
    (a curation run is minutes; the seed's training adds seconds)."""
    root = tmp_path_factory.mktemp("profile_runs")
    scorer = random_scorer(root / "scorer.pt")
    local_dir, slurm_dir = root / "local", root / "slurm"
    run_snakemake(local_dir, TARGET, SEED_TARGET, configfile=tiny_config(local_dir, scorer))

    with pytest.MonkeyPatch.context() as monkeypatch:
        use_cluster(monkeypatch, slurm_cluster)
        before = set(slurm_cluster.submitted_job_ids())
        log, cancelled, state, done = slurm_run_with_a_cancel(
            slurm_cluster, slurm_dir, tiny_config(slurm_dir, scorer), TARGET, SEED_TARGET)
    return ProfileRuns(local=local_dir, slurm=slurm_dir, log=log, job_ids=SUBMITTED.findall(log),
                       accepted=set(slurm_cluster.submitted_job_ids()) - before, cancelled=cancelled,
                       cancelled_state=state, epochs_at_cancel=done)


def test_profile_runs_every_job_through_sbatch_like_a_local_run(slurm_cluster, profile_runs):
    runs, log, job_ids = profile_runs, profile_runs.log, profile_runs.job_ids
    assert job_ids and len(set(job_ids)) == len(job_ids)
    assert set(job_ids) == runs.accepted, "snakemake's submissions and slurmctld's accepted jobs differ"

    jobs = {job_id: slurm_cluster.job(job_id) for job_id in job_ids}
    finished = {job_id: job for job_id, job in jobs.items() if job_id != runs.cancelled}
    assert all(job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in finished.values()), jobs
    by_comment = {job["Comment"]: job for job in finished.values()}
    # every rule ran inside a Slurm job, the per-chunk stages as one group job each
    for rule in ("demo_pool", "pool_table", "cluster_fit", "subset", "reshard_expert", "reshard_summary"):
        assert any(comment.startswith(f"rule_{rule}") for comment in by_comment), (rule, sorted(by_comment))
    for group, rule in [("download", "download"), ("embed", "embed"), ("filter", "filter_attributes"),
                        ("assign", "assign"), ("reshard", "reshard_part"), ("clip_score", "clip_score")]:
        assert f"rule_{group}_{rule}" in by_comment, (group, sorted(by_comment))
    finished_jobs = len(re.findall(r"^Finished jobid: ", log, flags=re.MULTILINE))
    assert finished_jobs > len(job_ids)  # groups: fewer submissions than jobs

    # GPU steps on the gpu partition with one (fake) GPU, everything else on the default partition;
    # train goes to the gpu partition too (set-resources), here without a GPU (train.gpus: 0)
    gpu_jobs = [job for comment, job in by_comment.items() if comment.startswith("rule_clip_score")]
    assert len(gpu_jobs) == 1 and gpu_jobs[0]["Partition"] == "gpu"
    assert "gres:gpu:1" in gpu_jobs[0].get("TresPerJob", ""), gpu_jobs[0]
    train_jobs = [job for comment, job in by_comment.items() if comment.startswith("rule_train")]
    assert train_jobs and {job["Partition"] for job in train_jobs} == {"gpu"}
    assert {job["Partition"] for job in finished.values() if job not in gpu_jobs + train_jobs} == {"cpu"}

    assert curation_outputs(runs.slurm / "results") == curation_outputs(runs.local / "results")


def test_scancelled_training_job_is_retried_and_resumes_to_the_uninterrupted_weights(slurm_cluster, profile_runs):
    """Issue 5: the scheduler kills the seed's training job after its first epoch; the profile's
    `retries: 1` resubmits it, the retry resumes from the run dir's newest checkpoint (epochs
    already trained are not trained again) and ends with the weights of an uninterrupted run."""
    import torch

    runs = profile_runs
    assert runs.cancelled_state == "CANCELLED", (
        f"job {runs.cancelled} ended {runs.cancelled_state} rather than by the scancel")
    seed_jobs = [job["job_id"] for job in slurm_cluster.jobs_with_comment("rule_train_wildcards_seed")]
    assert seed_jobs[0] == runs.cancelled and len(seed_jobs) == 2, seed_jobs  # the cancelled one, one retry
    assert set(seed_jobs) <= set(runs.job_ids)  # both submitted by snakemake
    retry = slurm_cluster.job(seed_jobs[1])
    assert (retry["JobState"], retry["ExitCode"]) == ("COMPLETED", "0:0"), retry
    assert f"SLURM jobid {runs.cancelled}" in runs.log and "Error in rule train" in runs.log

    run_dir = runs.slurm / SEED_RUN
    out_log = (run_dir / "out.log").read_text()
    resumed = [(int(name), int(epoch)) for name, epoch in RESUMED.findall(out_log)]
    assert len(resumed) == 1, resumed  # the first job started fresh, the retry resumed once
    resumed_at = resumed[0][1]
    # nothing lost: the retry picked up at least every epoch complete at the cancel ...
    assert resumed_at >= runs.epochs_at_cancel >= 1, (resumed, runs.epochs_at_cancel)
    started = [int(e) for e in re.findall(r"Start epoch (\d+)", out_log)]
    # ... and trained only what was missing: epoch 0 once, the resumed epoch onwards after it
    assert started.count(0) == 1 and started[-(SEED_EPOCHS - resumed_at):] == list(range(resumed_at, SEED_EPOCHS)), started
    assert all((run_dir / "checkpoints" / f"epoch_{e}.pt").exists() for e in range(1, SEED_EPOCHS + 1))

    slurm_seed = torch.load(runs.slurm / SEED_TARGET, map_location="cpu", weights_only=False)
    local_seed = torch.load(runs.local / SEED_TARGET, map_location="cpu", weights_only=False)
    assert slurm_seed["epoch"] == local_seed["epoch"] == SEED_EPOCHS
    slurm_sd, local_sd = slurm_seed["state_dict"], local_seed["state_dict"]
    assert slurm_sd.keys() == local_sd.keys()
    differ = {key: float((slurm_sd[key].double() - local_sd[key].double()).abs().max())
              for key in local_sd if not torch.equal(slurm_sd[key], local_sd[key])}
    assert not differ, f"{len(differ)} of {len(local_sd)} tensors differ from the uninterrupted run: {differ}"


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
