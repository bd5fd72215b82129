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

TINY_CONFIG = {
    "seed": 0,
    "pool": {
        "source": "demo",
        "demo": {
            "num_samples": 300,
            "image_size": 32,
            "eval_images_per_class": 5,
            "retrieval_pairs": 20,
        },
    },
    "download": {"shard_size": 100, "threads": 8},
    "embed": {"batch_size": 64},
    # ~280 of the 300 rows download; m must stay below the rows the fine k-means samples
    "cluster": {"num_experts": 4, "num_fine": 16},
    "reshard": {"shard_size": 50},
}


@pytest.fixture
def repo() -> Path:
    return REPO


def write_config(path: Path, overrides: dict | None = None) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    for key, value in (overrides or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
                  timeout: int = 900) -> subprocess.CompletedProcess:
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
