"""Acceptance of issue 13: a synthetic DataComp CommonPool (DataComp's metadata schema, npz features,
img2dataset shards; tests/datacomp_fixture.py) runs end to end with `pool.source: datacomp`:
clip_score from the precomputed L/14 column, clustering on the npz L/14 text features, the experts
and the ensemble, whose class names a tiny local open_clip text tower of the same (768-d) space
embeds. Kept small: 2 experts, seconds of training, no dense model or control arms, one task."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import run_snakemake
from datacomp_fixture import make_commonpool, write_text_tower
from modeflow.demo import generate_demo_pool

pytestmark = pytest.mark.e2e

ROWS, PARTS, SHARD_SIZE, FRACTION = 2000, 2, 500, 0.5


def datacomp_config(path, pool, tower, tasks) -> dict:
    model, checkpoint = tower
    cfg = {
        "pool": {"source": "datacomp", "datacomp": {"metadata": str(pool.metadata), "shards": str(pool.shards)}},
        "embed": {"encoder": "precomputed", "features": "l14_txt", "model": str(model),
                  "checkpoint": str(checkpoint), "device": "cpu"},
        "jobs": {"shards_per_job": 8},  # one chunk: each per-chunk stage is one job
        "cluster": {"num_experts": 2, "num_fine": 16},
        "filter": {"use": "clip_l14", "subsets": {"clip_l14": {"kind": "clip_score", "arch": "l14", "fraction": FRACTION}}},
        "reshard": {"shard_size": 200},
        "train": {"schedule_epochs": 2, "seed_epochs": 1, "batch_size": 32, "samples_per_epoch": 64,
                  "warmup": 2, "dense": False, "control_arms": []},
        "evaluate": {"tasks": [str(t) for t in tasks], "batch_size": 64},
    }
    path.write_text(yaml.safe_dump(cfg))
    return cfg


def datacomp_l14_subset(parquets, fraction) -> np.ndarray:
    """DataComp's clip_score by fraction, written from baselines/apply_filter.py: the threshold is the
    score at position int(N * fraction) of the scores sorted high to low (get_threshold), rows at or
    above it are kept, and the uids become sorted u8,u8 pairs (load_uids_with_clip_score, :709 sort)."""
    table = pa.concat_tables(pq.read_table(p, columns=["uid", "clip_l14_similarity_score"]) for p in parquets)
    scores = table["clip_l14_similarity_score"].to_numpy()
    threshold = -np.sort(-scores)[int(len(scores) * fraction)]
    uids = [u for u, s in zip(table["uid"].to_pylist(), scores) if s >= threshold]
    out = np.array([(int(u[:16], 16), int(u[16:], 16)) for u in uids], np.dtype("u8,u8"))
    out.sort()
    return out


def test_a_commonpool_runs_from_its_metadata_to_the_ensemble(tmp_path):
    pool = make_commonpool(tmp_path / "commonpool", rows=ROWS, parts=PARTS, shard_rows=None,
                           shard_size=SHARD_SIZE, images=True)
    tower = write_text_tower(tmp_path / "text_tower", dim=768)
    generate_demo_pool(tmp_path / "demo", seed=0, num_samples=50, domains=("shapes",), image_size=32,
                       eval_images_per_class=1, retrieval_pairs=5)
    config = tmp_path / "datacomp.yaml"
    datacomp_config(config, pool, tower, [tmp_path / "demo" / "tasks" / "shapes"])

    run_snakemake(tmp_path, "all", configfile=config)
    results = tmp_path / "results"

    # the shards' own parquets locate every sample; the stray uids the metadata lacks are counted
    index_stats = [json.loads(p.read_text()) for p in sorted((results / "pool" / "index").glob("*.json"))]
    assert sum(s["absent_from_metadata"] for s in index_stats) == len(pool.absent_uids)
    assert sorted(u for s in index_stats for u in s["absent_examples"]) == sorted(pool.absent_uids)
    health = json.loads((results / "report" / "health.json").read_text())  # and reported
    [stray] = [w for w in health["warnings"] if w["what"] == "absent_from_metadata"]
    assert stray["count"] == len(pool.absent_uids)

    # clip_score from the l14 column equals DataComp's rule
    from modeflow.common.subset_file import read_subset_file

    subset = read_subset_file(results / "filter" / "subsets" / "clip_l14.npy")
    assert np.array_equal(subset, datacomp_l14_subset(pool.parquets, FRACTION))

    # the clustering read the npz L/14 text features: each sample's vector is its metadata row's
    uid_row = {}
    for parquet in pool.parquets:
        uids = pq.read_table(parquet, columns=["uid"])["uid"].to_pylist()
        with np.load(str(parquet)[: -len(".parquet")] + ".npz") as npz:
            feats = npz["l14_txt"]
        uid_row.update({u: feats[i] for i, u in enumerate(uids)})
    vectors = np.load(results / "embed" / "00000.npy")
    uids = pq.read_table(results / "embed" / "00000.parquet")["uid"].to_pylist()
    assert vectors.shape == (len(uids), 768)
    assert np.array_equal(vectors, np.stack([uid_row[u] for u in uids]).astype(np.float32))

    # every kept sample that downloaded is in exactly one expert (and in the seed's pooled data)
    shard_rows = pa.concat_tables(pq.read_table(p, columns=["uid", "status"]) for p in sorted(pool.shards.glob("*.parquet")))
    downloaded = {u for u, st in zip(shard_rows["uid"].to_pylist(), shard_rows["status"].to_pylist()) if st == "success"}
    kept = {f"{int(hi):016x}{int(lo):016x}" for hi, lo in subset.tolist()} & downloaded
    experts = [json.loads((results / "experts" / e / "meta.json").read_text()) for e in ("00", "01")]
    assert sum(m["in_cluster_samples"] for m in experts) == len(kept)
    assert json.loads((results / "pooled" / "clip_l14" / "meta.json").read_text())["output_samples"] == len(kept)
    # the ensemble embedded the task's class names with the 768-d text tower
    encoder = json.loads((results / "ensemble" / "routing" / "encoder.json").read_text())
    assert encoder["encoder"] == "open_clip" and encoder["model"] == str(tower[0])
    assert (results / "ensemble" / "summary.csv").exists()


def test_a_commonpool_without_shards_is_downloaded_from_its_url_and_text_columns(tmp_path):
    """pool.datacomp.shards null: the metadata's url/text rows go through img2dataset (file:// urls
    here), and the pool index of the downloaded shards finds every row in the metadata."""
    from fixtures import jpeg

    pool = make_commonpool(tmp_path / "commonpool", rows=60, parts=2, shard_rows=0)
    images = tmp_path / "images"
    images.mkdir()
    for parquet in pool.parquets:  # point every url at a local image
        table = pq.read_table(parquet)
        urls = []
        for i, uid in enumerate(table["uid"].to_pylist()):
            path = images / f"{uid}.jpg"
            path.write_bytes(jpeg(np.full((40, 40, 3), i * 4 % 256, np.uint8)))
            urls.append(path.as_uri())
        pq.write_table(table.set_column(table.schema.get_field_index("url"), "url", pa.array(urls)), parquet)
    cfg = {"pool": {"source": "datacomp", "datacomp": {"metadata": str(pool.metadata)}},
           "download": {"shard_size": 100, "threads": 2},  # one shard, one download job
           "cluster": {"num_fine": 8},
           "filter": {"use": "clip_l14", "subsets": {"clip_l14": {"kind": "clip_score", "arch": "l14", "threshold": 0.3}}},
           "evaluate": {"tasks": []}}
    config = tmp_path / "download.yaml"
    # evaluate.tasks is not read for these targets' jobs, but resolve checks it: give a real task
    generate_demo_pool(tmp_path / "demo", seed=0, num_samples=50, domains=("shapes",), image_size=16,
                       eval_images_per_class=1, retrieval_pairs=1)
    cfg["evaluate"]["tasks"] = [str(tmp_path / "demo" / "tasks" / "shapes")]
    config.write_text(yaml.safe_dump(cfg))

    run_snakemake(tmp_path, "results/pool/index/00000.parquet", configfile=config)
    results = tmp_path / "results"
    table = pq.read_table(results / "pool" / "urls.parquet")
    assert table.num_rows == 60 and table["caption"].to_pylist() == [
        t for p in pool.parquets for t in pq.read_table(p, columns=["text"])["text"].to_pylist()]
    index = pq.read_table(results / "pool" / "index" / "00000.parquet")
    stats = json.loads((results / "pool" / "index" / "00000.json").read_text())
    assert index.num_rows == 60 and stats["absent_from_metadata"] == 0
    assert sorted(index["uid"].to_pylist()) == sorted(table["uid"].to_pylist())
