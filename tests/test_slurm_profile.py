"""The Slurm profile's plan without a cluster: GPU rules on the GPU partition with the GPUs the
config asks for, and the multi-node training shape (1×8 and 4×8 GPUs) documented in the README."""
from __future__ import annotations

import pytest

from conftest import REPO, run_snakemake, write_config
from test_kubernetes_profile import job_resources

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("gpus,nodes", [(8, 1), (8, 4)])
def test_training_jobs_request_the_documented_resources(tmp_path, gpus, nodes):
    config = write_config(tmp_path / "tiny.yaml", {"train.gpus": gpus, "train.nodes": nodes, "evaluate.gpus": 1})
    proc = run_snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "all", configfile=config)
    jobs = job_resources(proc.stdout)
    assert len(jobs["train"]) == 11  # seed, 4 experts, dense, 4 random-split experts, dense_1x
    for res in jobs["train"]:
        assert res["slurm_partition"] == "gpu" and res["gpu"] == str(gpus * nodes) and res["nodes"] == str(nodes)
        assert ("mpi" in res) == (nodes > 1)  # several nodes: the launcher's own srun, one torchrun per node
        if nodes > 1:
            assert res["mpi"] == "srun" and res["tasks"] == str(nodes)
    for rule in ("evaluate", "clip_score"):
        assert all(r["slurm_partition"] == "gpu" and r["gpu"] == "1" for r in jobs[rule]), rule
    assert all(r["slurm_partition"] == "cpu" and "gpu" not in r for r in jobs["embed"])
