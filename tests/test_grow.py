"""Growing a finished mixture (modeflow.grow): the config entries, the added expert's cluster, the
grown cluster model, and the planning of the added expert's training run."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from modeflow.cluster.model import ClusterModel
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.uids import uids_to_pairs
from modeflow.config import resolve
from modeflow.ensemble.combine import task_eval_dir
from modeflow.grow.model import grow_model, routed_cluster_dir, write_cluster_model_dir
from modeflow.grow.select import check_new_uids, select_cluster
from modeflow.grow.spec import GrownCluster
from modeflow.train.runs import plan_runs

CLUSTER_CFG = {"fine_iterations": 10, "metric": "euclidean"}


def _demo_config(**grow_entry) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["grow"] = {"experts": [grow_entry]} if grow_entry else {}
    return cfg


@pytest.fixture
def shard_dir(tmp_path):
    d = tmp_path / "new"
    d.mkdir()
    (d / "00000.tar").write_bytes(b"")
    (d / "00000.parquet").write_bytes(b"")
    return d


def test_an_added_expert_is_the_next_expert_and_model(shard_dir):
    s = resolve(_demo_config(name="clocks", shards=str(shard_dir), fine_clusters=[3, 1]), check_files=False)
    (g,) = s.grown
    assert (g.expert, g.model, g.cluster.fine_clusters) == ("04", "expert_04", (1, 3))
    assert s.models.index("expert_04") == s.models.index("expert_03") + 1
    assert s.ensemble_cluster_model["fine_centers"].endswith("grow/cluster/fine_centers.npy")
    assert "results/experts/04" in s.final_targets
    # without grow the ensemble routes with the cluster stage's model
    assert resolve(_demo_config(), check_files=False).ensemble_cluster_model["fine_centers"].endswith("cluster/fine_centers.npy")


@pytest.mark.parametrize("entry, message", [
    ({"fine_clusters": [1], "far_from_centers": {"distance": 0.5}}, r"grow.experts\[0\]: give exactly one of"),
    ({}, r"grow.experts\[0\]: give exactly one of"),
    ({"fine_clusters": [64]}, r"grow.experts\[0\].fine_clusters: \[64\] out of range.*num_fine = 64"),
    ({"fine_clusters": list(range(64))}, r"take all 64 fine clusters"),
])
def test_bad_cluster_keys_are_config_errors_naming_the_entry(shard_dir, entry, message):
    with pytest.raises(ConfigError, match=message):
        resolve(_demo_config(name="clocks", shards=str(shard_dir), **entry), check_files=False)


def test_two_entries_may_not_share_a_fine_cluster_or_a_name(shard_dir):
    cfg = _demo_config()
    cfg["grow"] = {"experts": [{"name": "a", "shards": str(shard_dir), "fine_clusters": [1, 2]},
                               {"name": "b", "shards": str(shard_dir), "fine_clusters": [2]}]}
    with pytest.raises(ConfigError, match=r"grow.experts\[1\].fine_clusters: fine cluster 2 already forms grow.experts\[0\]"):
        resolve(cfg, check_files=False)
    cfg["grow"]["experts"][1] = {"name": "a", "shards": str(shard_dir), "fine_clusters": [5]}
    with pytest.raises(ConfigError, match=r"grow.experts\[1\].name: 'a'"):
        resolve(cfg, check_files=False)


def test_the_new_shards_are_checked_when_the_run_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"grow.experts\[0\].shards is not a directory: .*nope"):
        resolve(_demo_config(name="x", shards=str(tmp_path / "nope"), fine_clusters=[1]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no .tar shards in .*empty \(grow.experts\[0\].shards\)"):
        resolve(_demo_config(name="x", shards=str(tmp_path / "empty"), fine_clusters=[1]))
    (tmp_path / "empty" / "00000.tar").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"00000.tar has no .parquet beside it"):
        resolve(_demo_config(name="x", shards=str(tmp_path / "empty"), fine_clusters=[1]))


def test_a_task_named_like_another_is_refused(shard_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"grow.experts\[0\].tasks: .* would be task 'shapes'"):
        resolve(_demo_config(name="x", shards=str(shard_dir), fine_clusters=[1], tasks=[str(tmp_path / "shapes")]),
                check_files=False)


def test_an_incomplete_task_directory_is_named_by_its_entry(shard_dir, tmp_path):
    (tmp_path / "clocks").mkdir()
    with pytest.raises(ConfigError, match=r"grow.experts\[0\].tasks: .*clocks"):
        resolve(_demo_config(name="x", shards=str(shard_dir), fine_clusters=[1], tasks=[str(tmp_path / "clocks")]))


def test_precomputed_features_cannot_grow(shard_dir):
    cfg = _demo_config(name="x", shards=str(shard_dir), fine_clusters=[1])
    cfg["embed"]["encoder"] = "precomputed"
    from modeflow.grow.spec import resolve_grown

    with pytest.raises(ConfigError, match="embed.encoder is precomputed"):
        resolve_grown(cfg, [], check_files=False)


# --- the added expert's cluster ------------------------------------------------------------


def _model() -> ClusterModel:
    """4 unit fine centers on the axes of R^4, two experts of two fine clusters each."""
    fine = np.eye(4, dtype=np.float32)
    return ClusterModel(fine, np.array([[.5, .5, 0, 0], [0, 0, .5, .5]], np.float32), np.array([0, 0, 1, 1]), {})


def _spec(**kw) -> GrownCluster:
    base = {"position": 0, "label": "new", "index": 2, "fine_clusters": None, "far_distance": None,
            "far_num_fine": None}
    return GrownCluster(**{**base, **kw})


def test_chosen_fine_clusters_take_the_new_samples_nearest_to_them():
    rng = np.random.default_rng(0)
    vectors = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 200)] + rng.normal(0, 0.05, (200, 4)).astype(np.float32)
    cols, centers = select_cluster(vectors, _model(), _spec(fine_clusters=(1, 3)), CLUSTER_CFG, seed=0)
    nearest = np.argmax(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), axis=1)
    np.testing.assert_array_equal(cols["member"], np.isin(nearest, [1, 3]))
    assert centers.shape == (0, 4) and (cols["new_fine"] == -1).all()


def test_an_empty_cluster_is_a_config_error_naming_the_key_and_the_fine_clusters_to_choose():
    vectors = np.tile(np.array([[1, 0, 0, 0]], np.float32), (10, 1))
    with pytest.raises(ConfigError, match=r"grow.experts\[0\].fine_clusters: none of the 10 new samples is "
                                          r"nearest to fine clusters \[2\].*with their sample counts: 0 \(10\)"):
        select_cluster(vectors, _model(), _spec(fine_clusters=(2,)), CLUSTER_CFG, seed=0)
    with pytest.raises(ConfigError, match=r"grow.experts\[0\].far_from_centers.distance: 2 new fine clusters.*0 of the 10"):
        select_cluster(vectors, _model(), _spec(far_distance=0.5, far_num_fine=2), CLUSTER_CFG, seed=0)


def test_far_samples_get_new_fine_centers():
    rng = np.random.default_rng(1)
    near = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 100)]
    far = np.tile(np.array([[1, 1, 1, 1]], np.float32), (60, 1)) * np.where(rng.random((60, 1)) < .5, 1, -1)
    far += rng.normal(0, 0.01, far.shape).astype(np.float32)
    vectors = np.concatenate([near, far])
    cols, centers = select_cluster(vectors, _model(), _spec(far_distance=0.9, far_num_fine=2), CLUSTER_CFG, seed=0)
    np.testing.assert_array_equal(cols["member"], np.r_[np.zeros(100, bool), np.ones(60, bool)])
    assert centers.shape == (2, 4) and set(cols["new_fine"][100:]) == {0, 1}
    assert sorted(np.sign(centers[:, 0]).tolist()) == [-1.0, 1.0]  # one center per far blob


def test_the_grown_model_routes_chosen_fine_clusters_and_new_centers_to_the_added_experts():
    base = _model()
    chosen, far = _spec(fine_clusters=(1,)), _spec(position=1, label="far", index=3, far_distance=.5, far_num_fine=2)
    new = np.array([[.5, .5, .5, .5], [-.5, .5, .5, .5]], np.float32)
    grown = grow_model(base, [chosen, far], [np.zeros((0, 4), np.float32), new])
    assert grown.num_experts == 4 and grown.num_fine == 6
    np.testing.assert_array_equal(grown.fine_to_coarse, [0, 2, 1, 1, 3, 3])
    np.testing.assert_allclose(grown.coarse_centers[2], base.fine_centers[1])
    np.testing.assert_allclose(grown.coarse_centers[3], new.mean(0))
    np.testing.assert_array_equal(grown.fine_centers[:4], base.fine_centers)  # the finished model is kept
    with pytest.raises(ConfigError, match=r"every fine cluster of expert\(s\) \['00'\]"):
        grow_model(base, [_spec(fine_clusters=(0, 1))], [np.zeros((0, 4), np.float32)])


def test_new_data_repeating_the_mixtures_uids_is_refused(tmp_path):
    base = tmp_path / "pool.parquet"
    uids = [f"{i:032x}" for i in range(5)]
    pq.write_table(pa.table({"uid": uids}), base)
    check_new_uids(uids_to_pairs([f"{i:032x}" for i in range(10, 13)]), "new.parquet", [base])
    with pytest.raises(InputDataError, match=r"new.parquet: 1 uid\(s\) .* already in the mixture's pool, e\.g\. "
                                             r"00000000000000000000000000000003"):
        check_new_uids(uids_to_pairs([f"{3:032x}", f"{11:032x}"]), "new.parquet", [base])
    with pytest.raises(InputDataError, match="appears more than once"):
        check_new_uids(uids_to_pairs([f"{11:032x}"] * 2), "new.parquet", [base])


def test_an_added_expert_trains_exactly_as_the_others():
    cfg = {"schedule_epochs": 8, "seed_epochs": 6, "batch_size": 32, "workers": 1, "model": "modeflow-tiny-resnet", "dense": True}
    runs = plan_runs(cfg, num_experts=4, samples_per_epoch=640, added_experts=1)
    assert {k: v for k, v in runs["expert_04"].to_dict().items() if k != "name"} == \
        {k: v for k, v in runs["expert_00"].to_dict().items() if k != "name"}
    # the dense baseline keeps the compute of the experts the mixture was planned with
    assert runs["dense"].to_dict() == plan_runs(cfg, num_experts=4, samples_per_epoch=640)["dense"].to_dict()


def test_evaluations_of_one_model_may_lie_in_several_directories(tmp_path):
    (tmp_path / "eval" / "shapes").mkdir(parents=True)
    (tmp_path / "grow" / "clocks").mkdir(parents=True)
    dirs = [tmp_path / "eval", tmp_path / "grow"]
    assert task_eval_dir(dirs, "clocks") == tmp_path / "grow"
    assert task_eval_dir(dirs, "shapes") == tmp_path / "eval"
    assert task_eval_dir(tmp_path / "eval", "missing") == tmp_path / "eval"


def test_the_mixture_finds_the_cluster_model_the_routing_used(tmp_path):
    routing = tmp_path / "ensemble" / "routing"
    routing.mkdir(parents=True)
    assert routed_cluster_dir(tmp_path, routing) == tmp_path / "cluster"
    write_cluster_model_dir(routing, "grow/cluster")
    assert routed_cluster_dir(tmp_path, routing) == tmp_path / "grow" / "cluster"
    (routing / "cluster_model.json").write_text(json.dumps({"dir": "../elsewhere"}))
    with pytest.raises(InputDataError, match="inside the results directory"):
        routed_cluster_dir(tmp_path, routing)
