"""Shared fixtures: repo paths, a tiny demo config, and a helper to run snakemake as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# Offline everywhere: nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# The demo config (config/config.yaml) scaled down: same stages and filters, a pool of 300 rows.
TINY_OVERRIDES = {
    "pool.demo.num_samples": 300,
    "pool.demo.image_size": 32,
    "pool.demo.eval_images_per_class": 2,  # x 40-48 classes per domain task, 178 in the mixed one
    "pool.demo.retrieval_pairs": 20,
    "download.shard_size": 100,
    "download.threads": 8,
    "embed.batch_size": 64,
    # ~280 of the 300 rows download; m must stay below the rows the fine k-means samples
    "cluster.num_fine": 16,
    "reshard.shard_size": 50,
    # seconds of training per model: the DAG's wiring is under test here, not what a CLIP learns
    "train.schedule_epochs": 2,
    "train.seed_epochs": 1,
    "train.batch_size": 32,
    "train.samples_per_epoch": 64,
    "train.warmup": 2,
    "evaluate.batch_size": 64,
}


def _with_overrides(cfg: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


TINY_CONFIG = _with_overrides(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), TINY_OVERRIDES)
TINY_CONFIG.pop("results_dir", None)  # relative to each test's --directory


@pytest.fixture
def repo() -> Path:
    return REPO


def write_config(path: Path, overrides: dict | None = None) -> Path:
    cfg = _with_overrides(yaml.safe_load(yaml.safe_dump(TINY_CONFIG)), overrides or {})
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
                  timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the real snakemake CLI on this repo's Snakefile, in `workdir`."""
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2"]
    if configfile:
        # "--configfile=PATH": the option takes several values, so a bare path would swallow targets
        cmd.append(f"--configfile={configfile}")
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run's output: rule -> job count (incl. 'total')."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One uninterrupted run of the whole tiny pipeline, shared by every test that reads finished
    results (treat it as read-only): (workdir, configfile)."""
    workdir = tmp_path_factory.mktemp("full")
    config = write_config(workdir / "tiny.yaml")
    run_snakemake(workdir, "all", configfile=config)
    return workdir, config
