"""Two-level clustering and assignment (modeflow.cluster: kmeans, sample, model, assign, summary,
report) and the demo's expert scores, on tiny synthetic embeddings."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_snakemake, write_config
from modeflow.cluster.assign import assign, assign_chunk
from modeflow.cluster.model import check_cluster_config, fit_cluster_model, load_cluster_model, save_cluster_model
from modeflow.cluster.report import plot_projection, plot_sizes
from modeflow.cluster.sample import expected_sample_rows, sample_embeddings
from modeflow.cluster.summary import check_empty_experts, summarize_assignments
from modeflow.demo.score_cluster import plot_expert_scores, score_experts
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.cluster.kmeans import balanced_assign, cluster_capacity, fit_kmeans

CFG = {"num_experts": 4, "num_fine": 12, "sample_fraction": 1.0, "sample_max": 100_000,
       "metric": "euclidean", "balanced": True, "fine_iterations": 20, "coarse_iterations": 30,
       "empty_expert": "error"}


def blobs(num_blobs=4, per_blob=150, dim=16, spread=0.05, seed=0):
    """Well separated gaussian blobs on the unit sphere, unnormalised by a random scale per row
    (stored embeddings are unnormalised) -> (vectors float32, blob labels)."""
    rng = np.random.default_rng(seed)
    means = np.linalg.qr(rng.normal(size=(dim, num_blobs)))[0].T  # orthonormal: far apart
    x = np.concatenate([m + spread * rng.normal(size=(per_blob, dim)) for m in means])
    x *= rng.uniform(0.5, 3.0, size=(len(x), 1))
    return x.astype(np.float32), np.repeat(np.arange(num_blobs), per_blob)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fitted():
    x, labels = blobs()
    return x, labels, fit_cluster_model(unit(x), CFG, seed=0)


def purity(pred, truth):
    return sum(np.bincount(truth[pred == p]).max() for p in np.unique(pred)) / len(pred)


@pytest.mark.parametrize("metric", ["euclidean", "spherical"])
@pytest.mark.parametrize("balanced", [True, False])
def test_blobs_each_land_in_one_expert(metric, balanced):
    x, truth = blobs()
    model = fit_cluster_model(unit(x), {**CFG, "metric": metric, "balanced": balanced}, seed=0)
    _, expert, _ = assign(x, model)
    assert purity(expert, truth) == 1.0
    assert len(np.unique(expert)) == 4  # and each blob has an expert of its own
    if metric == "spherical":
        np.testing.assert_allclose(np.linalg.norm(model.fine_centers, axis=1), 1.0, atol=1e-5)


def test_fine_to_coarse_map(fitted):
    _, _, model = fitted
    assert model.fine_to_coarse.shape == (12,) and model.fine_to_coarse.dtype == np.int64
    assert set(model.fine_to_coarse.tolist()) == {0, 1, 2, 3}
    assert model.fine_centers.shape == (12, 16) and model.coarse_centers.shape == (4, 16)
    assert model.params["sample_rows"] == 600 and model.params["balanced"] is True


def test_balanced_sizes_stay_within_the_slack():
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(1000, 8)).astype(np.float32))
    centers, labels = fit_kmeans(x, 10, niter=10, seed=0, balanced=True, slack=0.1)
    sizes = np.bincount(labels, minlength=10)
    assert sizes.sum() == 1000 and sizes.max() <= cluster_capacity(1000, 10, 0.1) == 110
    # labels are the balanced assignment to the returned centers
    assert np.array_equal(labels, balanced_assign(x, centers, 110))
    _, plain = fit_kmeans(x, 10, niter=10, seed=0, balanced=False)
    assert np.bincount(plain, minlength=10).std() > sizes.std()  # the cap does something


def test_balanced_assign_closest_proposers_win():
    centers = np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32)
    x = np.array([[3.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=np.float32)  # all nearest center 0
    assert balanced_assign(x, centers, capacity=2).tolist() == [1, 0, 0]
    assert balanced_assign(x, centers, capacity=3).tolist() == [0, 0, 0]
    # candidates=1 forces the fallback search among centers with room left
    assert balanced_assign(x, centers, capacity=2, candidates=1).tolist() == [1, 0, 0]
    with pytest.raises(ValueError):
        balanced_assign(x, centers, capacity=1)


def test_fit_is_deterministic_for_a_seed():
    x, _ = blobs(seed=3)
    a = fit_cluster_model(unit(x), CFG, seed=5)
    b = fit_cluster_model(unit(x), CFG, seed=5)
    c = fit_cluster_model(unit(x), CFG, seed=6)
    assert np.array_equal(a.fine_centers, b.fine_centers)
    assert np.array_equal(a.coarse_centers, b.coarse_centers)
    assert np.array_equal(a.fine_to_coarse, b.fine_to_coarse)
    assert not np.array_equal(a.fine_centers, c.fine_centers)


def test_assign_matches_brute_force(fitted):
    x, _, model = fitted
    rng = np.random.default_rng(2)
    queries = np.concatenate([x, rng.normal(size=(77, 16)).astype(np.float32)])
    fine, expert, dist = assign(queries, model, batch_size=64)  # several batches, a partial last
    d = np.linalg.norm(unit(queries)[:, None, :] - model.fine_centers[None], axis=2)
    assert np.array_equal(fine, d.argmin(axis=1))
    assert np.array_equal(expert, model.fine_to_coarse[d.argmin(axis=1)])
    np.testing.assert_allclose(dist, d.min(axis=1), atol=1e-4)
    assert fine.dtype == expert.dtype == np.int32 and dist.dtype == np.float32


def test_assign_rejects_zero_rows_and_wrong_dim(fitted):
    x, _, model = fitted
    bad = x[:10].copy()
    bad[7] = 0
    with pytest.raises(InputDataError, match="row 7"):
        assign(bad, model, source="chunk.npy")
    with pytest.raises(InputDataError, match="dim 16"):
        assign(x[:, :8], model)


def write_chunks(tmp_path, parts):
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"{i:05d}.npy")
        np.save(paths[-1], part)
    return paths


def test_sample_respects_fraction_max_and_seed(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    paths = write_chunks(tmp_path, [x[:100], x[100:250], x[250:]])
    a = sample_embeddings(paths, fraction=0.5, max_rows=1000, seed=1)
    assert a.shape == (150, 6)
    assert sample_embeddings(paths, fraction=0.5, max_rows=40, seed=1).shape == (40, 6)
    assert np.array_equal(a, sample_embeddings(paths, fraction=0.5, max_rows=1000, seed=1))
    assert not np.array_equal(a, sample_embeddings(paths, fraction=0.5, max_rows=1000, seed=2))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    # every sampled row is a distinct source row, drawn from all chunks
    src = {tuple(np.round(r, 5)) for r in unit(x)}
    rows = [tuple(np.round(r, 5)) for r in a]
    assert set(rows) <= src and len(set(rows)) == 150
    hits = unit(x) @ a.T > 0.99999
    assert hits[:100].any() and hits[100:250].any() and hits[250:].any()
    full = sample_embeddings(paths, fraction=1.0, max_rows=1000, seed=1)
    np.testing.assert_allclose(full, unit(x), atol=1e-6)  # all rows, in chunk order


def test_sample_rejects_mismatched_dims(tmp_path):
    paths = write_chunks(tmp_path, [np.ones((3, 4), np.float32), np.ones((3, 5), np.float32)])
    with pytest.raises(InputDataError, match="00001.npy"):
        sample_embeddings(paths, fraction=1.0, max_rows=10, seed=0)


def test_config_errors_name_the_keys():
    with pytest.raises(ConfigError, match="cluster.num_experts"):
        check_cluster_config({**CFG, "num_experts": 13}, 1000)
    with pytest.raises(ConfigError, match="cluster.num_experts"):
        check_cluster_config({**CFG, "num_experts": 13}, None)
    with pytest.raises(ConfigError, match=r"cluster.num_fine \(12\).*10 embeddings sampled"):
        check_cluster_config({**CFG, "sample_fraction": 0.1}, 100)
    with pytest.raises(ConfigError, match="cluster.num_fine"):
        check_cluster_config({**CFG, "sample_max": 11}, 1000)
    check_cluster_config(CFG, None)
    check_cluster_config({**CFG, "num_experts": 12}, 12)  # m = n ("OneStep") and m = rows are fine
    assert expected_sample_rows(1000, 0.0001, 50) == 1 and expected_sample_rows(0, 1.0, 5) == 0
    with pytest.raises(ConfigError, match="cluster.num_fine"):  # the fit job re-checks real rows
        fit_cluster_model(unit(blobs(per_blob=2)[0]), CFG, seed=0)


def test_save_load_roundtrip(tmp_path, fitted):
    _, _, model = fitted
    save_cluster_model(model, tmp_path / "cluster")
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == [
        "coarse_centers.npy", "fine_centers.npy", "fine_to_coarse.npy", "params.json"]
    back = load_cluster_model(tmp_path / "cluster")
    assert np.array_equal(back.fine_centers, model.fine_centers)
    assert np.array_equal(back.coarse_centers, model.coarse_centers)
    assert np.array_equal(back.fine_to_coarse, model.fine_to_coarse)
    assert back.params == json.loads(json.dumps(model.params))
    np.save(tmp_path / "cluster" / "fine_to_coarse.npy", np.full(12, 4))  # n = 4: out of range
    with pytest.raises(InputDataError, match="fine_to_coarse.npy"):
        load_cluster_model(tmp_path / "cluster")


def chunk_files(tmp_path, x, name="00000"):
    npy, table = tmp_path / f"{name}.npy", tmp_path / f"{name}.parquet"
    np.save(npy, x)
    uids = [f"{i:032x}" for i in range(len(x))][::-1]  # not sorted: order must be kept, not rebuilt
    pq.write_table(pa.table({"uid": uids, "shard": [name] * len(x),
                             "key": [str(i) for i in range(len(x))]}), table)
    return npy, table, uids


def test_assign_chunk_keeps_embed_row_order(tmp_path, fitted):
    x, _, model = fitted
    npy, table, uids = chunk_files(tmp_path, x)
    stats = assign_chunk(npy, table, model, tmp_path / "assign" / "00000.parquet")
    out = pq.read_table(tmp_path / "assign" / "00000.parquet")
    assert out.column_names == ["uid", "fine", "expert", "distance"]
    assert out.column("uid").to_pylist() == uids
    fine, expert, dist = assign(x, model)
    assert np.array_equal(out.column("fine").to_numpy(), fine)
    assert np.array_equal(out.column("expert").to_numpy(), expert)
    assert str(out.schema.field("fine").type) == "int32" and str(out.schema.field("distance").type) == "float"
    assert stats["rows"] == 600 and sum(stats["experts"]) == 600
    np.save(npy, x[:-1])
    with pytest.raises(InputDataError, match="00000.parquet has 600 rows"):
        assign_chunk(npy, table, model, tmp_path / "assign" / "bad.parquet")
    assert not (tmp_path / "assign" / "bad.parquet").exists()


def assign_table(path, fine, fine_to_coarse):
    fine = np.asarray(fine, dtype=np.int32)
    pq.write_table(pa.table({"uid": [f"{i:032x}" for i in range(len(fine))], "fine": fine,
                             "expert": fine_to_coarse[fine].astype(np.int32),
                             "distance": np.full(len(fine), 0.5, np.float32)}), path)
    return path


def test_summary_counts_and_empty_expert(tmp_path):
    f2c = np.array([0, 0, 1, 2, 3])
    paths = [assign_table(tmp_path / "a.parquet", [0, 1, 2, 2], f2c),
             assign_table(tmp_path / "b.parquet", [1, 4, 4], f2c)]
    summary = summarize_assignments(paths, num_fine=5, num_experts=4)
    assert summary["expert_sizes"] == {"00": 3, "01": 2, "02": 0, "03": 2}
    assert summary["fine_sizes"] == [1, 2, 2, 0, 2] and summary["rows"] == 7
    assert summary["empty_experts"] == ["02"] and summary["expert_spread"]["min"] == 0
    assert summary["fine_spread"]["empty"] == 1 and summary["mean_distance"] == 0.5
    with pytest.raises(InputDataError, match=r"expert\(s\) 02 .*cluster.num_experts.*empty_expert: allow"):
        check_empty_experts(summary, "error")
    check_empty_experts(summary, "allow")
    with pytest.raises(InputDataError, match="another cluster model"):
        summarize_assignments(paths, num_fine=4, num_experts=4)


def test_report_items(tmp_path, fitted):
    x, blob, model = fitted
    npy, table, uids = chunk_files(tmp_path, x)
    out = tmp_path / "assign.parquet"
    assign_chunk(npy, table, model, out)
    summary = summarize_assignments([out], 12, 4)
    plot_sizes(summary, tmp_path / "sizes.png")
    plot_projection([npy], [out], tmp_path / "proj.png", num_experts=4, seed=0, max_points=200)
    noise = np.where(np.arange(600) % 10 == 0, "mismatched", "clean")
    pq.write_table(pa.table({"uid": uids, "domain": [f"d{b}" for b in blob], "noise": noise,
                             "label": ["x"] * 600}), tmp_path / "truth.parquet")
    scores = score_experts([out], tmp_path / "truth.parquet", 4)
    assert scores["purity"] == 1.0 and scores["nmi"] == 1.0 and scores["clean_samples"] == 540
    assert np.asarray(scores["contingency_all"]).sum() == 600
    assert sorted(np.asarray(scores["contingency_clean"]).max(axis=0).tolist()) == [135] * 4
    plot_expert_scores(scores, tmp_path / "scores.png")
    for png in ("sizes.png", "proj.png", "scores.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_workflow_rejects_more_experts_than_fine_clusters_at_parse_time(tmp_path):
    cfg = write_config(tmp_path / "config.yaml", {"cluster.num_experts": 8, "cluster.num_fine": 4})
    result = run_snakemake(tmp_path, "-n", configfile=cfg, check=False)
    assert result.returncode != 0
    assert "cluster.num_experts (8)" in result.stdout + result.stderr
