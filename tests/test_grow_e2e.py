"""Adding an expert to a finished mixture, end to end: a fifth demo domain's data (clocks, as
img2dataset shards) grows a finished tiny demo run by exactly one expert, and only what depends on
it runs (docs/method.md §13)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import job_stats, run_snakemake, write_config
from modeflow.demo import generate_demo_pool
from modeflow.demo.shards import write_demo_shards
from modeflow.ensemble.summary import read_claims
from modeflow.ensemble.sweep import copy_finished_run

pytestmark = pytest.mark.e2e

# what a grown run plans on top of a finished one, besides one grow_evaluate job per model
GROWN_JOBS = {"grow_embed": 1, "grow_cluster": 1, "grow_reshard_part": 1, "grow_reshard_expert": 1,
              "train": 1, "evaluate": 1, "grow_cluster_model": 1, "ensemble_weights": 1, "ensemble": 1,
              "results_report": 1, "ensemble_demo_checks": 1, "health_report": 1, "all": 1}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# the finished run's models that stay: its control arms are dropped with the addition (fewer models
# to evaluate on the new task, to keep the test short; dropping them reruns nothing either)
KEPT_MODELS = ["seed", "expert_00", "expert_01", "expert_02", "expert_03", "dense"]


def _grown_config(work, clocks, **far):
    return write_config(work / "grown.yaml", {"train.control_arms": [], "grow.experts": [{
        "name": "clocks", "shards": str(clocks / "shards"), "tasks": [str(clocks / "tasks" / "clocks")],
        # the demo's captions lie within ~0.8 of their fine centers; clock captions, 0.75 and more
        "far_from_centers": {"distance": 0.7, "num_fine": 2, **far}}]})


def test_a_fifth_domain_adds_exactly_one_expert_and_reruns_only_what_depends_on_it(finished_run, tmp_path):
    source, _ = finished_run
    work = tmp_path / "grown"
    copy_finished_run(source, work)
    clocks = tmp_path / "clocks"
    generate_demo_pool(clocks, seed=1, num_samples=200, domains=["clocks"], image_size=32, noise_fraction=0.0,
                       eval_images_per_class=2, retrieval_pairs=20)
    write_demo_shards(clocks, shard_size=100, image_size=32)
    config = _grown_config(work, clocks)
    finished = {p.name: _sha256(p) for p in (work / "results" / "models").glob("*.pt")}

    jobs = job_stats(run_snakemake(work, "-n", "all", configfile=config).stdout)
    evaluations = jobs.pop("grow_evaluate")
    assert {k: v for k, v in jobs.items() if k != "total"} == GROWN_JOBS, jobs
    assert evaluations == len(KEPT_MODELS) + 1  # every model, the added one too, on the clocks task

    run_snakemake(work, "all", configfile=config)
    results = work / "results"
    assert {p.name: _sha256(p) for p in (results / "models").glob("*.pt") if p.name in finished} == finished
    stats = json.loads((results / "grow" / "clocks" / "cluster.json").read_text())
    assert stats["expert"] == "04" and stats["members"] == stats["rows"] > 0, stats
    assert json.loads((results / "experts" / "04" / "meta.json").read_text())["output_samples"] == stats["members"]
    assert json.loads((results / "models" / "expert_04.json").read_text())["samples_seen"] == \
        json.loads((results / "models" / "expert_00.json").read_text())["samples_seen"]
    # claim (a) has the new domain's row: the added expert against the best other expert on clocks
    claims = {row["claim"]: row for row in read_claims(results / "ensemble" / "claims.json")}
    row = claims["a:clocks"]
    assert row["verdict"] in ("holds", "not shown", "reversed") and row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert "expert_04" in row["statement"]
    print(f"added expert on clocks: {row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] {row['verdict']}")
    summary = (results / "ensemble" / "summary.md").read_text()
    assert "clocks" in summary and "expert_04" in summary
    assert set(json.loads((results / "train" / "costs.json").read_text())) >= set(KEPT_MODELS) | {"expert_04"}

    # the grown mixture is what modeflow.mixture loads and bundles
    from modeflow.mixture.bundle import make_bundle
    from modeflow.mixture.load import Mixture

    assert Mixture.load(results, device="cpu").num_experts == 5
    make_bundle(results, tmp_path / "bundle", config)
    bundle = tmp_path / "bundle"
    assert "clocks" in [json.loads(line)["key"] for line in (bundle / "results.jsonl").read_text().splitlines()]
    submission = json.loads((bundle / "submission.json").read_text())
    assert submission["num_experts"] == 5 and submission["dataset_size"]["grow_clocks"] == stats["members"]
    assert (bundle / "samples" / "grow_clocks.npy").is_file() and (bundle / "checkpoints" / "expert_04.pt").is_file()
    assert "Nothing to be done" in run_snakemake(work, "-n", "all", configfile=config).stdout

    # a cluster that would be empty is a config error naming the key (only grow_cluster reruns)
    bad = _grown_config(work, clocks, distance=1.99)
    proc = run_snakemake(work, "all", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "grow.experts[0].far_from_centers.distance" in proc.stdout + proc.stderr


def test_an_addition_without_tasks_plans_no_evaluation_on_them(tmp_path):
    """An added expert without tasks of its own is still trained, evaluated on the configured tasks
    and routed to; no model is evaluated on tasks it does not have."""
    shards = tmp_path / "new"
    shards.mkdir()
    for suffix in (".tar", ".parquet"):
        (shards / f"00000{suffix}").write_bytes(b"")
    config = write_config(tmp_path / "grown.yaml", {"grow.experts": [
        {"name": "more", "shards": str(shards), "fine_clusters": [3]}]})
    jobs = job_stats(run_snakemake(tmp_path, "-n", "all", configfile=config).stdout)
    assert "grow_evaluate" not in jobs, jobs
    assert {k: jobs[k] for k in ("grow_embed", "grow_cluster", "grow_reshard_expert", "grow_cluster_model")} == \
        dict.fromkeys(("grow_embed", "grow_cluster", "grow_reshard_expert", "grow_cluster_model"), 1)
    assert jobs["train"] == 12 and jobs["evaluate"] == 12  # the 11 models of the tiny run and expert_04
