"""The control arms (random_split, dense_1x), the levers that go with them (routing sharpness, the
`ensemble.weights` choice), MoDE's fine -> coarse map, and their costs: the pure functions, the run
plan, the config checks and the combining step on constructed outputs."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modeflow.cluster.kmeans import balanced_assign, cluster_capacity
from modeflow.cluster.model import ClusterModel, fit_cluster_model, nearest_center, save_cluster_model
from modeflow.common.errors import ConfigError
from modeflow.common.names import DENSE_1X_MODEL, RANDOM_SPLIT, expert_model, random_model
from modeflow.common.subset_file import write_subset_file
from modeflow.common.uids import sort_pairs, uid_pairs
from modeflow.config import resolve
from modeflow.ensemble.arms import routing_arms
from modeflow.ensemble.combine import run_ensemble
from modeflow.ensemble.costs import arm_costs
from modeflow.ensemble.routing import CODE_TEMPERATURE, compute_task_weights, mode_weights_code, route_queries
from modeflow.reshard.random_split import random_partition, write_random_assignments
from modeflow.train.recipe import resolve_train_config
from modeflow.train.runs import plan_runs
from test_evaluate import make_classification, make_retrieval

from conftest import TINY_CONFIG


def _uids(n: int, offset: int = 0) -> list[str]:
    return [f"{zlib.crc32(str(i + offset).encode()):08x}" * 4 for i in range(n)]


def _pairs(uids: list[str]) -> np.ndarray:
    return uid_pairs(pa.array(uids), "test")


# --- the random partition ---------------------------------------------------------------------


def test_random_partition_reproduces_the_sizes_and_is_seeded():
    pairs = _pairs(_uids(1000))
    sizes = [500, 300, 150, 50]
    labels = random_partition(pairs, sizes, seed=0)
    assert np.bincount(labels, minlength=4).tolist() == sizes
    assert np.array_equal(labels, random_partition(pairs, sizes, seed=0))  # deterministic for a seed
    other = random_partition(pairs, sizes, seed=1)
    assert np.bincount(other, minlength=4).tolist() == sizes and (other != labels).mean() > 0.3
    # random: part 0 is not the first (or any contiguous run of) uids
    assert 0.3 < (labels[:500] == 0).mean() < 0.7


def test_random_partition_follows_the_uids_not_their_order():
    pairs = _pairs(_uids(300))
    labels = random_partition(pairs, [100, 200], seed=3)
    perm = np.random.default_rng(0).permutation(300)
    assert np.array_equal(random_partition(pairs[perm], [100, 200], seed=3), labels[perm])


def test_random_partition_checks_the_sizes():
    with pytest.raises(ValueError, match="add up to 9 but there are 10"):
        random_partition(_pairs(_uids(10)), [4, 5], seed=0)


def _chunk(tmp_path, name, uids, experts):
    pq.write_table(pa.table({"uid": uids, "shard": ["00000"] * len(uids), "key": [f"{i:09d}" for i in range(len(uids))]}),
                   tmp_path / f"embed_{name}.parquet")
    pq.write_table(pa.table({"uid": uids, "expert": pa.array(experts, pa.int64())}), tmp_path / f"assign_{name}.parquet")
    return tmp_path / f"embed_{name}.parquet", tmp_path / f"assign_{name}.parquet"


def test_random_assignments_keep_the_clusters_sizes_and_ignore_the_clustering(tmp_path):
    """Two chunks, 3 experts; the subset keeps 2 of every 3 rows. The parts hold as many kept
    samples as the clusters; another clustering with the same sizes gives the same split."""
    uids = [_uids(60), _uids(45, offset=60)]
    rng = np.random.default_rng(0)
    clusters = [rng.integers(0, 3, 60), rng.integers(0, 3, 45)]
    kept = [u for chunk in uids for i, u in enumerate(chunk) if i % 3]
    write_subset_file(tmp_path / "subset.npy", sort_pairs(_pairs(kept)))
    outs = {}
    for run, assignment in (("a", clusters), ("b", None)):
        if assignment is None:  # the same kept sizes per expert, other samples in each
            flat_kept = [c[i] for c in clusters for i in range(len(c)) if i % 3]
            shuffled = iter(np.random.default_rng(5).permutation(flat_kept))
            assignment = [np.array([next(shuffled) if i % 3 else 0 for i in range(len(c))]) for c in clusters]
        (tmp_path / run).mkdir()
        paths = [_chunk(tmp_path / run, str(j), u, e) for j, (u, e) in enumerate(zip(uids, assignment))]
        out_paths = [tmp_path / run / f"random_{j}.parquet" for j in range(2)]
        stats = write_random_assignments([p[0] for p in paths], [p[1] for p in paths], tmp_path / "subset.npy",
                                         out_paths, tmp_path / run / "split.json", num_experts=3, seed=7)
        outs[run] = [pq.read_table(p) for p in out_paths]
        assert stats == json.loads((tmp_path / run / "split.json").read_text())
        # the random parts' kept sizes are the clusters' kept sizes
        kept_random = np.concatenate([t["expert"].to_numpy()[[i % 3 > 0 for i in range(t.num_rows)]] for t in outs[run]])
        kept_cluster = np.concatenate([np.asarray(a)[[i % 3 > 0 for i in range(len(a))]] for a in assignment])
        assert np.bincount(kept_random, minlength=3).tolist() == np.bincount(kept_cluster, minlength=3).tolist()
        assert list(stats["sizes"].values()) == np.bincount(kept_cluster, minlength=3).tolist()
        assert stats["kept_samples"] == len(kept) == 70
        for t, u in zip(outs[run], uids):
            assert t["uid"].to_pylist() == u  # aligned with the embed table
    # same sizes, another clustering: the same split
    assert all(a.equals(b) for a, b in zip(outs["a"], outs["b"]))


def test_random_assignments_name_a_misaligned_table(tmp_path):
    embed, assign = _chunk(tmp_path, "0", _uids(4), [0, 1, 0, 1])
    pq.write_table(pa.table({"uid": _uids(4)[::-1], "expert": pa.array([0, 1, 0, 1], pa.int64())}), assign)
    write_subset_file(tmp_path / "subset.npy", sort_pairs(_pairs(_uids(4))))
    with pytest.raises(Exception, match=r"assign_0.parquet: rows do not match .*embed_0.parquet"):
        write_random_assignments([embed], [assign], tmp_path / "subset.npy", [tmp_path / "o.parquet"],
                                 tmp_path / "s.json", num_experts=2, seed=0)


# --- the run plan -----------------------------------------------------------------------------


def test_dense_1x_trains_exactly_the_rest_of_the_schedule():
    cfg = resolve_train_config({"schedule_epochs": 32, "seed_epochs": 27, "batch_size": 64})
    runs = plan_runs(cfg, num_experts=4, samples_per_epoch=1000, control_arms=[RANDOM_SPLIT, DENSE_1X_MODEL])
    seed, dense_1x = runs["seed"], runs[DENSE_1X_MODEL]
    assert (dense_1x.resume_epoch, dense_1x.stop_epoch) == (seed.stop_epoch, 32)
    assert dense_1x.run_epochs == 32 - 27
    # seed + dense_1x = one dense run of T epochs: the paper's 1x baseline
    assert seed.samples_seen + dense_1x.samples_seen == 32 * 16 * 64
    for i in range(4):  # the random split's experts are planned exactly as MoDE's
        random, expert = runs[random_model(i)], runs[expert_model(i)]
        assert {**random.to_dict(), "name": None} == {**expert.to_dict(), "name": None}
    assert list(runs)[-5:] == [random_model(i) for i in range(4)] + [DENSE_1X_MODEL]
    assert DENSE_1X_MODEL not in plan_runs(cfg, num_experts=4, samples_per_epoch=1000)
    with pytest.raises(ConfigError, match="train.control_arms: unknown arm"):
        plan_runs(cfg, num_experts=4, samples_per_epoch=1000, control_arms=["dense_2x"])


# --- the config -------------------------------------------------------------------------------


def _config(**train):
    cfg = json.loads(json.dumps(TINY_CONFIG))
    cfg["train"].update(train)
    return cfg


def test_control_arms_resolve_into_models():
    settings = resolve(_config(control_arms=None), check_files=False)  # demo preset, null: both arms
    assert settings.control_arms == [RANDOM_SPLIT, DENSE_1X_MODEL]
    assert settings.models[-5:] == [random_model(i) for i in range(4)] + [DENSE_1X_MODEL]
    assert any(t.endswith("random_split/split.json") for t in settings.final_targets)
    assert resolve(_config(control_arms=[]), check_files=False).control_arms == []
    only = resolve(_config(control_arms=["dense_1x"]), check_files=False)
    assert only.models[-1] == DENSE_1X_MODEL and not any(m.startswith("random_") for m in only.models)
    cfg = _config(preset="small", schedule_epochs=None, seed_epochs=None, batch_size=None,
                  samples_per_epoch=None, warmup=None, control_arms=None)
    cfg["download"]["allow_upscale"] = True  # ViT-B-32's 224 px over the tiny demo's 32 px images
    small = resolve(cfg, check_files=False)
    assert small.control_arms == [DENSE_1X_MODEL]  # the DataComp presets' default


def test_random_split_with_one_expert_is_a_config_error():
    cfg = _config(control_arms=["random_split"])
    cfg["cluster"]["num_experts"] = 1
    with pytest.raises(ConfigError, match=r"train.control_arms: random_split needs at least 2 experts.*"
                                          r"cluster.num_experts is 1"):
        resolve(cfg, check_files=False)
    cfg["train"]["control_arms"] = None  # the demo's default asks for it too
    with pytest.raises(ConfigError, match="train.control_arms"):
        resolve(cfg, check_files=False)
    cfg["train"]["control_arms"] = ["dense_1x"]
    assert resolve(cfg, check_files=False).control_arms == [DENSE_1X_MODEL]
    cfg["train"]["control_arms"] = ["dense_2x"]
    with pytest.raises(ConfigError, match="train.control_arms"):
        resolve(cfg, check_files=False)


# --- costs ------------------------------------------------------------------------------------


def test_arm_costs_of_the_control_arms():
    meta = lambda name, seen: {"name": name, "samples_seen": seen, "flops": 2.0 * seen, "wall_seconds": 1.0}
    metas = {m["name"]: m for m in [meta("seed", 600), meta("dense", 400), meta(DENSE_1X_MODEL, 100)]
             + [meta(expert_model(i), 100) for i in range(4)] + [meta(random_model(i), 100) for i in range(4)]}
    costs = arm_costs(metas)
    assert costs["mode"]["samples_seen"] == costs[RANDOM_SPLIT]["samples_seen"] == costs["dense"]["samples_seen"] == 1000
    assert costs[DENSE_1X_MODEL]["samples_seen"] == 700 and costs[DENSE_1X_MODEL]["flops"] == 1400
    assert costs["mode"]["forward_passes"] == costs[RANDOM_SPLIT]["forward_passes"] == 4
    assert costs["top1"]["forward_passes"] == costs["oracle"]["forward_passes"] == costs["dense"]["forward_passes"] == 1
    assert "random_00" not in costs  # its cost is the random split's


# --- MoDE's fine -> coarse map ----------------------------------------------------------------


def test_fine_to_coarse_is_the_nearest_coarse_center_by_default():
    """Three blobs of fine centers, two of them close, and 2 experts: the balanced coarse fit
    must cap each expert at ceil(m/2 · 1.1) fine centers, so it splits a blob; MoDE maps each fine
    center to its nearest coarse center afterwards (prep_hrchy.py: kmeans.predict)."""
    rng = np.random.default_rng(0)
    blobs = np.array([[1.0, 0, 0], [0.9, 0.43, 0], [0, 0, 1.0]])
    sample = np.concatenate([b + 0.02 * rng.standard_normal((200, 3)) for b in blobs])
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    cfg = {"num_experts": 2, "num_fine": 12, "sample_fraction": 1.0, "sample_max": 10_000, "metric": "euclidean",
           "balanced": True, "fine_iterations": 20, "coarse_iterations": 30}
    nearest = fit_cluster_model(sample, {**cfg, "fine_to_coarse": "nearest"}, seed=0)
    np.testing.assert_array_equal(nearest.fine_to_coarse, nearest_center(nearest.fine_centers, nearest.coarse_centers))
    assert nearest.params["fine_to_coarse"] == "nearest"
    balanced = fit_cluster_model(sample, {**cfg, "fine_to_coarse": "balanced"}, seed=0)
    cap = cluster_capacity(12, 2)
    np.testing.assert_array_equal(balanced.fine_to_coarse,
                                  balanced_assign(balanced.fine_centers, balanced.coarse_centers, cap))
    assert np.bincount(balanced.fine_to_coarse, minlength=2).max() <= cap
    # the same fit, two maps: they differ where the cap forced a fine center away from its nearest
    np.testing.assert_array_equal(nearest.fine_centers, balanced.fine_centers)
    assert not np.array_equal(nearest.fine_to_coarse, balanced.fine_to_coarse)


def test_nearest_center_ties_go_to_the_lower_index():
    assert nearest_center(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [-1.0, 0.0], [3.0, 0.0]])).tolist() == [0, 0]


# --- the weighted arms: ensemble.weights and routing sharpness --------------------------------


FINE = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
FINE_TO_COARSE = np.array([0, 1, 1])


def test_routing_arms():
    assert routing_arms() == {"mode": "code", "mode_paper": "paper"}
    assert routing_arms("paper", 1.0) == {"mode": "paper", "mode_code": "code", "mode_sharp": "sharp"}
    with pytest.raises(ConfigError, match="ensemble.weights"):
        routing_arms("median")
    with pytest.raises(ConfigError, match="ensemble.sharp_temperature"):
        routing_arms("code", 0.0)


def test_sharp_weights_are_the_code_scores_at_another_temperature():
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(mode_weights_code(emb, FINE, FINE_TO_COARSE, 2, temperature=CODE_TEMPERATURE),
                               mode_weights_code(emb, FINE, FINE_TO_COARSE, 2))
    soft, sharp = (mode_weights_code(emb, FINE, FINE_TO_COARSE, 2, temperature=t) for t in (8.0, 0.05))
    assert abs(soft[0] - 0.5) < 0.01 and sharp[1] > 0.97  # the same order, much sharper
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    routed = route_queries(queries, FINE, FINE_TO_COARSE, 2, variant="sharp", temperature=0.05)
    for q, row in zip(queries, routed):
        np.testing.assert_allclose(row, mode_weights_code(q[None], FINE, FINE_TO_COARSE, 2, temperature=0.05))
    with pytest.raises(ValueError, match="temperature"):
        route_queries(queries, FINE, FINE_TO_COARSE, 2, variant="sharp")


class HashEncoder:
    """A deterministic stand-in for the clustering encoder: 2-d vectors from a hash of each text."""

    def encode(self, texts, batch_size):
        return np.array([[1.0 + zlib.crc32(t.encode()) % 7, 1.0 + zlib.crc32(t[::-1].encode()) % 5] for t in texts])


@pytest.fixture
def constructed(tmp_path):
    """2 experts, their random-split twins, dense_1x and a seed: saved outputs on a 4-class task
    of 40 images and a 12-caption retrieval task."""
    tasks = [make_classification(tmp_path / "tasks" / "digits", n=40), make_retrieval(tmp_path / "tasks" / "ret", n=12)]
    labels = np.arange(40) % 4
    rng = np.random.default_rng(0)
    dirs = {}
    for model in ("00", "01", "seed", DENSE_1X_MODEL, random_model(0), random_model(1)):
        dirs[model] = tmp_path / "eval" / model
        (dirs[model] / "digits").mkdir(parents=True)
        (dirs[model] / "ret").mkdir(parents=True)
        logits = rng.random((40, 4), dtype=np.float32) + (np.eye(4, dtype=np.float32)[labels] if model == "00" else 0)
        np.save(dirs[model] / "digits" / "logits.npy", logits)
        np.save(dirs[model] / "digits" / "labels.npy", labels)
        np.save(dirs[model] / "ret" / "similarity.npy", rng.random((12, 12), dtype=np.float32))
        np.save(dirs[model] / "ret" / "text_to_image.npy", np.arange(12))
    save_cluster_model(ClusterModel(FINE.astype(np.float32), np.array([[1.0, 0.0], [-0.5, 0.5]], np.float32),
                                    FINE_TO_COARSE), tmp_path / "cluster")
    return dirs, tasks, tmp_path / "cluster"


def test_ensemble_weights_choose_the_mode_arm(constructed, tmp_path):
    dirs, tasks, cluster_dir = constructed
    paper = compute_task_weights(tasks, cluster_dir, HashEncoder(), tmp_path / "paper", weights="paper")
    code = compute_task_weights(tasks, cluster_dir, HashEncoder(), tmp_path / "code", sharp_temperature=0.5)
    assert paper["digits"]["arms"] == {"mode": "paper", "mode_code": "code"}
    assert paper["digits"]["mode"] == code["digits"]["mode_paper"] and paper["digits"]["mode_code"] == code["digits"]["mode"]
    assert code["digits"]["sharp_temperature"] == 0.5 and "mode_sharp" in code["ret"]["query_weights"]
    rows = {(r["task"], r["arm"]): r for r in run_ensemble(dirs, tasks, cluster_dir, tmp_path / "paper", tmp_path / "e")}
    other = {(r["task"], r["arm"]): r for r in run_ensemble(dirs, tasks, cluster_dir, tmp_path / "code", tmp_path / "f")}
    for task in ("digits", "ret"):  # the paper's weights are MoDE's arm now, the code's beside it
        assert rows[(task, "mode")]["metrics"] == other[(task, "mode_paper")]["metrics"]
        assert rows[(task, "mode_code")]["metrics"] == other[(task, "mode")]["metrics"]
    assert "mode: MoDE with the paper's weights" in (tmp_path / "e" / "summary.md").read_text()


def test_combining_with_the_control_arms(constructed, tmp_path):
    dirs, tasks, cluster_dir = constructed
    compute_task_weights(tasks, cluster_dir, HashEncoder(), tmp_path / "w", sharp_temperature=1.0)
    out = tmp_path / "ens"
    rows = run_ensemble(dirs, tasks, cluster_dir, tmp_path / "w", out,
                        groups={RANDOM_SPLIT: [random_model(0), random_model(1)]},
                        own_experts={"digits": "00"}, resamples=200, seed=0)
    arms = [r["arm"] for r in rows if r["task"] == "digits"]
    assert arms == ["mode", "mode_paper", "mode_sharp", "uniform", "top1", "expert_00", "expert_01", "oracle",
                    "seed", DENSE_1X_MODEL, RANDOM_SPLIT]
    digits = {r["arm"]: r for r in rows if r["task"] == "digits"}
    random_mean = np.mean([np.load(dirs[random_model(i)] / "digits" / "logits.npy") for i in range(2)], axis=0)
    assert digits[RANDOM_SPLIT]["headline"] == pytest.approx(float((random_mean.argmax(1) == np.arange(40) % 4).mean()))
    # every arm's per-query hits are saved, and average to its headline
    for arm, row in digits.items():
        assert np.load(out / "per_sample" / "digits" / f"{arm}.correct.npy").mean() == pytest.approx(row["headline"])
    claims = {c["claim"]: c for c in json.loads((out / "claims.json").read_text())}
    assert set(claims) == {"a", "a:digits", "b", "c", "d", "e", "f", "g"}
    assert claims["d"]["verdict"] == "n/a" and "dense" in claims["d"]["note"]  # no equal-compute dense here
    summary = {(r["task"], r["arm"]): r["headline"] for r in rows}
    mean = lambda arm: np.mean([summary[(t, arm)] for t in ("digits", "ret")])
    assert claims["b"]["difference"] == pytest.approx(mean("mode") - mean(RANDOM_SPLIT))
    assert claims["a:digits"]["difference"] == pytest.approx(summary[("digits", "expert_00")] - summary[("digits", "expert_01")])
    assert claims["a:digits"]["verdict"] == "holds"  # expert 00 knows the digits
    text = (out / "summary.md").read_text()
    assert "## Claims" in text and "| (b) | MoDE > random split" in text
    assert (out / "claims.csv").read_text().startswith("claim,statement,arm,versus,difference,ci_low,ci_high,verdict")


# --- on the shared finished tiny run ----------------------------------------------------------


@pytest.mark.e2e
def test_the_control_arms_in_a_finished_run(finished_run):
    """The tiny demo run trains both control arms: the random split has the clusters' sizes,
    dense_1x ends the seed's schedule, and the claims table and the report name them."""
    results = finished_run[0] / "results"
    split = json.loads((results / "random_split" / "split.json").read_text())
    for name, size in split["sizes"].items():
        expert = json.loads((results / "experts" / name / "meta.json").read_text())
        random = json.loads((results / "random_split" / "experts" / name / "meta.json").read_text())
        # the demo subset lists each uid once, so kept samples = in-cluster entries
        assert random["in_cluster_samples"] == expert["in_cluster_samples"] == size
        assert random["arguments"]["ooc_ratio"] == expert["arguments"]["ooc_ratio"]
    seed, dense_1x = (json.loads((results / "models" / f"{m}.json").read_text()) for m in ("seed", DENSE_1X_MODEL))
    assert (dense_1x["resume_epoch"], dense_1x["stop_epoch"]) == (seed["stop_epoch"], seed["schedule_epochs"])
    expert_meta = json.loads((results / "models" / "expert_00.json").read_text())
    random_meta = json.loads((results / "models" / f"{random_model(0)}.json").read_text())
    assert (random_meta["resume_epoch"], random_meta["stop_epoch"], random_meta["samples_seen"]) == \
        (expert_meta["resume_epoch"], expert_meta["stop_epoch"], expert_meta["samples_seen"])
    claims = {c["claim"]: c for c in json.loads((results / "ensemble" / "claims.json").read_text())}
    assert {"a", "b", "c", "d", "e", "f", "g"} <= set(claims)
    assert all(c["verdict"] in ("holds", "not shown", "reversed") for c in claims.values())
    costs = json.loads((results / "train" / "costs.json").read_text())
    assert costs[RANDOM_SPLIT]["samples_seen"] == costs["mode"]["samples_seen"]
    assert costs[RANDOM_SPLIT]["forward_passes"] == 4 and costs[DENSE_1X_MODEL]["forward_passes"] == 1
    page = (results / "ensemble" / "summary.html").read_text()
    assert "<h3>Claims</h3>" in page and "random_split" in page and "forward passes per input" in page
