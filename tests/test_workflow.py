"""End to end: the real snakemake CLI on a tiny demo config, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO, SNAKEMAKE, run_snakemake, write_config

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
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One uninterrupted run of the whole tiny pipeline, shared by the tests below."""
    workdir = tmp_path_factory.mktemp("full")
    config = write_config(workdir / "tiny.yaml")
    run_snakemake(workdir, "all", configfile=config)
    return workdir, config


def test_dry_run_plans_every_stage(tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_snakemake(tmp_path, "-n", "all", configfile=config)
    for rule, count in [("demo_pool", 1), ("pool_table", 1), ("download", 3), ("embed", 3), ("download_summary", 1)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in proc.stdout.splitlines()), (rule, proc.stdout)
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


def test_single_embedding_target_runs_only_what_it_needs(tmp_path):
    config = write_config(tmp_path / "tiny.yaml")
    proc = run_snakemake(tmp_path, "-n", "results/embed/00001.npy", configfile=config)
    jobs = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert jobs == {"demo_pool": 1, "pool_table": 1, "download": 1, "embed": 1, "total": 4}


def test_killed_run_resumes_to_identical_outputs(finished_run, tmp_path):
    reference, _ = finished_run
    config = write_config(tmp_path / "tiny.yaml")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "2", "--configfile", str(config), "all"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill the whole process tree (scheduler, jobs, img2dataset workers) as a node failure would,
    # once the download has started producing shards.
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "results" / "shards").glob("*/*.tar")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "results" / "embed").exists() or len(list((tmp_path / "results" / "embed").glob("*.npy"))) < 3
    run_snakemake(tmp_path, "--rerun-incomplete", "all", configfile=config)
    assert result_contents(tmp_path / "results") == result_contents(reference / "results")


def test_config_typo_stops_before_any_work(tmp_path):
    config = write_config(tmp_path / "bad.yaml", {"download.shard_sise": 10})
    proc = run_snakemake(tmp_path, "-n", "all", configfile=config, check=False)
    assert proc.returncode != 0
    assert "unknown config key 'download.shard_sise' (did you mean 'shard_size'?)" in proc.stdout + proc.stderr
