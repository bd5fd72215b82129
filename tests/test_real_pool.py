"""A url list shaped like a real pool's first week: dead links at the end, one whole shard dead.
The run still reaches the ensemble, and the run-health report names the empty shard (issue 12)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_snakemake, write_config
from modeflow.demo import generate_demo_pool
from modeflow.demo.httpserver import serve_demo

pytestmark = pytest.mark.e2e

ROWS, SHARD_SIZE, DEAD = 300, 100, 100  # the last 100 rows: every one of shard 00002 is a dead link


def _url_list(root, demo, server: str):
    """The demo pool as a plain url list on a loopback server, its last DEAD rows 404."""
    table = pq.read_table(demo / "urls.parquet")
    urls = [u.replace("http://modeflow-demo.invalid", server) for u in table.column("url").to_pylist()]
    urls[-DEAD:] = [f"{server}/images/gone-{i}.png" for i in range(DEAD)]  # nothing there: 404
    path = root / "pool.parquet"
    pq.write_table(pa.table({"url": urls, "caption": table.column("caption")}), path)
    return path


def test_a_pool_with_a_dead_shard_runs_to_the_ensemble_and_reports_it(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    demo = tmp_path / "demo"
    generate_demo_pool(demo, seed=0, num_samples=ROWS, image_size=32, eval_images_per_class=2,
                       retrieval_pairs=20)
    with serve_demo(demo) as server:  # a plain HTTP server for urls on 127.0.0.1 (no proxy)
        pool = _url_list(tmp_path, demo, server)
        tasks = [str(demo / "tasks" / name) for name in ("shapes", "mixed")]
        config = write_config(tmp_path / "dead.yaml", {
            "pool": {"source": "url_list", "url_list": {"path": str(pool)}},
            "download.shard_size": SHARD_SIZE,
            "evaluate.tasks": tasks,
            "cluster.num_experts": 2,
            "train.dense": False,
            "train.control_arms": [],  # the wiring under test is the pool's, not the arms'
        })
        run_snakemake(tmp_path, "all", configfile=config)
    results = tmp_path / "results"
    download = json.loads((results / "download" / "summary.json").read_text())
    assert download["successes"] > ROWS - DEAD - 30  # the live rows downloaded (a few are corrupt on purpose)
    assert download["empty_shards"] == ["00002"]
    assert download["shards"]["00002"] == {"rows": DEAD, "successes": 0}
    # the empty shard went through the reshard as an empty index, not an IndexError
    assert json.loads((results / "reshard" / "index" / "00002.json").read_text())["pool_samples"] == 0
    assert (results / "ensemble" / "summary.csv").exists()
    health = json.loads((results / "report" / "health.json").read_text())
    assert health["empty_shards"] == ["00002"]
    [warning] = [w for w in health["warnings"] if w["what"] == "empty_shards"]
    assert "00002" in warning["message"] and "404" in warning["message"]
    assert "00002" in (results / "report" / "health.html").read_text()
