"""The Kubernetes profile: it parses, and a dry run with it plans the tiny demo with the documented
resources. No cluster here: a dry run needs no kube config (a bogus KUBECONFIG proves it), but the
profile's default storage does, so the bucket is a local moto S3 (test_s3's fixture)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, write_config
from test_s3 import BUCKET, env_with, s3  # noqa: F401  (s3: the moto server fixture)

PROFILE = REPO / "profiles" / "kubernetes"
GPU_RULES = ("train", "evaluate", "clip_score")


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def test_profile_names_executor_image_storage_and_gpu_resources():
    cfg = profile()
    assert cfg["executor"] == "kubernetes"
    assert cfg["container-image"]  # a placeholder users replace (docs/cluster.md)
    assert cfg["default-storage-provider"] == "s3"
    assert cfg["default-storage-prefix"].startswith("s3://")
    for rule in GPU_RULES:
        assert cfg["set-resources"][rule]["gpu"] == 1
        assert cfg["set-resources"][rule]["gpu_manufacturer"] == "nvidia"
    assert cfg["default-resources"]["cpus_per_task"] == 1
    gpu_config = yaml.safe_load((PROFILE / "gpu.yaml").read_text())
    assert gpu_config["train"]["gpus"] == 1 and gpu_config["evaluate"]["gpus"] == 1


def job_resources(output: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the `resources:` of each of its jobs, from a dry run's job listing."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"\s*(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif rule and (match := re.match(r"\s*resources: (.*)$", line)):
            pairs = (item.split("=", 1) for item in match.group(1).split(", "))
            jobs.setdefault(rule, []).append({key: value for key, value in pairs})
            rule = None
    return jobs


@pytest.mark.e2e
def test_dry_run_plans_tiny_demo_with_gpu_requests(s3, tmp_path):  # noqa: F811
    (tmp_path / "kubeconfig").write_text("this is not a kube config\n")
    env = env_with(s3, tmp_path)
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    config = write_config(tmp_path / "tiny.yaml")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--profile", str(PROFILE), "-n", f"--configfile={config}",
           # the profile's placeholders, pointed at the local S3
           "--default-storage-prefix", f"s3://{BUCKET}/k8s-dry-run", f"--storage-s3-endpoint-url={s3['url']}", "all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "Using profile" in output
    jobs = job_resources(output)
    # the whole demo is planned: 4 experts + seed + dense trained and evaluated
    assert {"train", "evaluate", "clip_score"} <= set(jobs), (sorted(jobs), output[-3000:])
    # seed, 4 experts, dense; the control arms: 4 random-split experts, dense_1x
    assert len(jobs["train"]) == 11 and len(jobs["evaluate"]) == 11
    for rule in GPU_RULES:
        for res in jobs[rule]:
            assert res["gpu"] == "1" and res["gpu_manufacturer"] == "nvidia", (rule, res)
    for rule in ("download", "embed", "assign", "reshard_part", "reshard_expert"):
        for res in jobs[rule]:
            assert "gpu" not in res and res["cpus_per_task"] == "1", (rule, res)
    # nothing ran and nothing was written to storage
    assert not (tmp_path / "results").exists()
    assert "s3://" + BUCKET in output  # inputs and outputs are storage objects
