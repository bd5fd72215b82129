"""`pool.source: datacomp` wired into the workflow: its config keys and their errors, the per-chunk
pool index from the shards' own parquets, embeddings read from the npz features, the pool table a
download starts from, and a dry run showing that pool -> filter -> pooled reshard plans no embed job.
(The whole run is tests/test_datacomp_e2e.py; the baselines' rules are tests/test_datacomp_baselines.py.)"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import job_stats, run_snakemake
from datacomp_fixture import make_commonpool
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.config import resolve
from modeflow.embed.precomputed import class_name_encoder_options, embed_precomputed, model_embed_dim
from modeflow.pool.datacomp import CommonPool, pool_table
from modeflow.pool.shard_index import chunk_index


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return make_commonpool(tmp_path_factory.mktemp("commonpool"), rows=300, parts=2, shard_rows=None, shard_size=100)


def config(pool, *, shards=True, subsets=None, use="l14", embed=None, **sections) -> dict:
    cfg = {"pool": {"source": "datacomp",
                    "datacomp": {"metadata": str(pool.metadata), "shards": str(pool.shards) if shards else None}},
           "filter": {"use": use, "subsets": subsets or {"l14": {"kind": "clip_score", "arch": "l14", "fraction": 0.5}}},
           "evaluate": {"tasks": [str(pool.root)]}, "cluster": {"num_fine": 16}}
    if embed:
        cfg["embed"] = embed
    return cfg | sections


# --- config ------------------------------------------------------------------------------------

def test_existing_commonpool_shards_are_planned_like_a_shard_directory(pool):
    settings = resolve(config(pool), check_files=False)
    assert settings.shards_dir == str(pool.shards)
    assert settings.plan.shards == ("00000", "00001", "00002", "00003")
    assert "results/download/summary.json" not in settings.final_targets


def test_without_shards_the_metadata_rows_are_planned_for_download(pool):
    settings = resolve(config(pool, shards=False, download={"shard_size": 100}), check_files=False)
    assert settings.shards_dir is None and settings.plan.num_rows == 300
    assert settings.plan.shards == ("00000", "00001", "00002")
    assert "results/download/summary.json" in settings.final_targets


def test_datacomp_needs_its_metadata_directory(pool, tmp_path):
    with pytest.raises(ConfigError, match="pool.datacomp.metadata' is required"):
        resolve({"pool": {"source": "datacomp"}, "evaluate": {"tasks": [str(tmp_path)]}}, check_files=False)
    cfg = config(pool, shards=False)
    cfg["pool"]["datacomp"]["metadata"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="pool.datacomp.metadata: not a directory"):
        resolve(cfg, check_files=False)
    cfg = config(pool)
    cfg["pool"]["datacomp"]["shards"] = str(tmp_path / "nowhere")
    with pytest.raises(InputDataError, match="pool.datacomp.shards is not a directory"):
        resolve(cfg, check_files=False)


@pytest.mark.parametrize("spec, message", [
    ({"kind": "clip_score", "arch": "l14"}, "exactly one of `threshold`"),
    ({"kind": "clip_score", "arch": "l14", "threshold": 0.3, "checkpoint": "x.pt", "model": "RN50"}, "either `arch`"),
    ({"kind": "image_based_clip_score", "threshold": 0.3, "centroids": "c.npy", "targets": "t.npy"}, "arch: image_based_clip_score needs"),
    ({"kind": "text_based"}, "synsets: text_based needs"),
    ({"kind": "image_based", "centroids": "c.npy"}, "targets: image_based needs"),
    ({"kind": "laion2b", "synsets": "s.txt"}, "synsets: kind laion2b does not take"),
    ({"kind": "basic_filter", "arch": "b32"}, "arch: only clip_score and image_based_clip_score"),
])
def test_a_metadata_baseline_with_wrong_options_is_refused_naming_the_key(pool, spec, message):
    with pytest.raises(ConfigError, match=rf"filter\.subsets\.s\.?[a-z_]*: .*{re.escape(message)}|{re.escape(message)}"):
        resolve(config(pool, subsets={"s": spec}, use="s"), check_files=False)


@pytest.mark.parametrize("spec", [{"kind": "laion2b"}, {"kind": "clip_score", "arch": "b32", "threshold": 0.3}])
def test_metadata_baselines_need_a_commonpool(spec, tmp_path):
    cfg = {"pool": {"source": "demo"}, "filter": {"use": "s", "subsets": {"s": spec}}}
    with pytest.raises(ConfigError, match="filter.subsets.s.kind: .* needs pool.source: datacomp"):
        resolve(cfg, check_files=False)


def test_an_arch_clip_score_does_not_need_the_seed_model(pool):
    # the seed may train on it: the scores are the CommonPool's, not the seed's
    settings = resolve(config(pool), check_files=False)
    assert settings.seed_subset == "l14"


def test_a_metadata_parquet_without_a_column_a_filter_needs_stops_the_run_at_start(pool, tmp_path):
    import shutil

    broken = tmp_path / "metadata"
    shutil.copytree(pool.metadata, broken)
    first = sorted(broken.glob("*.parquet"))[0]
    pq.write_table(pq.read_table(first).drop(["original_width"]), first)
    cfg = config(pool, subsets={"basic": {"kind": "basic_filter"}}, use="basic")
    cfg["pool"]["datacomp"]["metadata"] = str(broken)
    with pytest.raises(InputDataError, match=rf"{re.escape(str(first))}: no column 'original_width' "
                                             r"\(needed by filter.subsets.basic\)"):
        resolve(cfg)


def test_precomputed_embeddings_need_a_commonpool_and_a_text_tower_of_their_size(pool, tmp_path):
    tower = {"encoder": "precomputed", "features": "l14_txt", "model": "ViT-L-14", "checkpoint": "random"}
    assert model_embed_dim("ViT-L-14") == 768 and model_embed_dim("ViT-B-32") == 512
    resolve(config(pool, embed=tower), check_files=False)
    with pytest.raises(ConfigError, match=r"embed.model: 'ViT-B-32' embeds text in 512 dims, but embed.features "
                                          r"'l14_txt' has 768"):
        resolve(config(pool, embed=tower | {"model": "ViT-B-32"}), check_files=False)
    with pytest.raises(ConfigError, match="embed.model: with embed.encoder precomputed, name the open_clip"):
        resolve(config(pool, embed={"encoder": "precomputed"}), check_files=False)
    with pytest.raises(ConfigError, match="embed.checkpoint: with embed.encoder precomputed"):
        resolve(config(pool, embed=tower | {"checkpoint": None}), check_files=False)
    with pytest.raises(ConfigError, match="embed.encoder: precomputed .* needs pool.source: datacomp"):
        resolve({"pool": {"source": "demo"}, "embed": tower}, check_files=False)
    # the ensemble embeds class names with that text tower
    assert class_name_encoder_options(tower | {"pooling": "pooler"})["encoder"] == "open_clip"


def test_precomputed_embeddings_need_their_npz_at_start(pool, tmp_path):
    import shutil

    bare = tmp_path / "metadata"
    shutil.copytree(pool.metadata, bare)
    npz = sorted(bare.glob("*.npz"))[1]
    npz.unlink()
    cfg = config(pool, embed={"encoder": "precomputed", "model": "ViT-L-14", "checkpoint": "random"})
    cfg["pool"]["datacomp"]["metadata"] = str(bare)
    with pytest.raises(InputDataError, match=rf"{re.escape(str(npz))}: npz of .* not found .*needed by embed.features"):
        resolve(cfg)


# --- the pool index, the embeddings, the pool table ------------------------------------------------

def test_the_pool_index_locates_shard_samples_in_the_metadata_and_counts_strays(pool):
    cp = CommonPool.open(str(pool.metadata))
    parquets = sorted(str(p) for p in pool.shards.glob("*.parquet"))
    index, stats = chunk_index(parquets, cp)
    assert index.column_names == ["uid", "shard", "key", "part", "row"]
    assert stats["absent_from_metadata"] == 2 and sorted(stats["absent_examples"]) == sorted(pool.absent_uids)
    assert stats["absent_per_shard"] == {"00003": 2}
    shard_rows = [r for p in parquets for r in pq.read_table(p).to_pylist() if r["status"] == "success"]
    assert stats["samples"] == len(shard_rows) and stats["in_metadata"] == len(shard_rows) - 2
    # every successful sample, in shard order; each names the metadata row of its uid, or none
    assert index["key"].to_pylist() == [r["key"] for r in shard_rows]
    by_part = {p.name: pq.read_table(p, columns=["uid"])["uid"].to_pylist() for p in pool.parquets}
    rows = index.to_pylist()
    assert all(by_part[r["part"]][r["row"]] == r["uid"] for r in rows if r["uid"] not in pool.absent_uids)
    assert [r["uid"] for r in rows if r["part"] is None] == list(pool.absent_uids)


def test_a_uid_on_two_metadata_rows_is_an_error_naming_both(pool, tmp_path):
    import shutil

    twice = tmp_path / "metadata"
    shutil.copytree(pool.metadata, twice)
    first, second = sorted(twice.glob("*.parquet"))
    uid = pq.read_table(first)["uid"][0].as_py()
    table = pq.read_table(second)
    pq.write_table(table.set_column(0, "uid", [[uid] + table["uid"].to_pylist()[1:]]), second)
    with pytest.raises(InputDataError, match=rf"uid {uid} is on 2 metadata rows: .*{first.name}.*{second.name}"):
        chunk_index([str(pool.shards / "00000.parquet")], CommonPool.open(str(twice)))


def test_precomputed_embeddings_are_the_npz_rows_of_the_indexed_samples(pool, tmp_path):
    from modeflow.common.atomic import write_parquet

    cp = CommonPool.open(str(pool.metadata))
    full, _ = chunk_index([str(pool.shards / f"0000{i}.parquet") for i in (1, 2, 3)], cp)
    write_parquet(tmp_path / "index.parquet", full)
    stats = embed_precomputed(str(tmp_path / "index.parquet"), str(pool.metadata), "b32_txt",
                              str(tmp_path / "e.npy"), str(tmp_path / "e.parquet"), expected_dim=512)
    vectors, uids = np.load(tmp_path / "e.npy"), pq.read_table(tmp_path / "e.parquet")
    index = full.filter(pa.array([u not in pool.absent_uids for u in full["uid"].to_pylist()]))
    assert stats["not_in_metadata"] == 2  # the strays have no features: left out
    assert uids.column_names == ["uid", "shard", "key"] and uids["uid"].equals(index["uid"])
    assert vectors.dtype == np.float32 and vectors.shape == (index.num_rows, 512) and stats["metadata_parts"] == 2
    for row, (part, i) in enumerate(zip(index["part"].to_pylist(), index["row"].to_pylist())):
        with np.load(pool.metadata / part.replace(".parquet", ".npz")) as npz:
            assert np.array_equal(vectors[row], npz["b32_txt"][i].astype(np.float32))
    with pytest.raises(InputDataError, match=r"\.npz: b32_txt has 512 dims, but the class-name encoder .* embeds in 768"):
        embed_precomputed(str(tmp_path / "index.parquet"), str(pool.metadata), "b32_txt",
                          str(tmp_path / "f.npy"), str(tmp_path / "f.parquet"), expected_dim=768)
    assert not (tmp_path / "f.npy").exists()


def test_the_download_pool_table_is_the_metadata_in_order(pool):
    table, stats = pool_table(str(pool.metadata))
    meta = [r for p in pool.parquets for r in pq.read_table(p, columns=["uid", "url", "text"]).to_pylist()]
    assert table.column_names == ["row", "uid", "url", "caption"]
    assert table["row"].to_pylist() == list(range(300)) and stats["rows"] == 300
    assert [(r["uid"], r["url"], r["text"]) for r in meta] == list(zip(*(table[c].to_pylist() for c in ("uid", "url", "caption"))))


# --- the DAG ---------------------------------------------------------------------------------------

def test_pool_filter_and_pooled_reshard_plan_no_embed_job(pool, tmp_path):
    from modeflow.demo import generate_demo_pool

    generate_demo_pool(tmp_path / "demo", num_samples=50, domains=("shapes",), image_size=16,
                       eval_images_per_class=1, retrieval_pairs=1)
    cfg = config(pool, embed={"encoder": "precomputed", "model": "ViT-L-14", "checkpoint": "random"},
                 evaluate={"tasks": [str(tmp_path / "demo" / "tasks" / "shapes")]})
    path = tmp_path / "dc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = job_stats(run_snakemake(tmp_path, "-n", "results/pooled/l14", configfile=path).stdout)
    assert jobs == {"pool_index": 4, "subset": 1, "reshard_pooled_part": 4, "reshard_pooled": 1, "total": 10}, jobs
    # and the experts cluster the npz features: the embed jobs read the pool index, not the tars
    jobs = job_stats(run_snakemake(tmp_path, "-n", "results/embed/00000.npy", configfile=path).stdout)
    assert jobs == {"pool_index": 1, "embed": 1, "total": 2}, jobs


def test_a_metadata_baseline_is_computed_from_the_metadata_files_and_its_assets():
    from modeflow.filter.subsets import from_metadata, subset_inputs

    subsets = {"tb": {"kind": "text_based", "synsets": "ids.txt"},
               "img": {"kind": "image_based", "centroids": "c.npy", "targets": "t.npy"},
               "seed_scored": {"kind": "clip_score", "fraction": 0.5},
               "basic": {"kind": "basic_filter"}}

    def inputs(name, source="datacomp"):
        return subset_inputs(subsets, name, attributes=["a.parquet"], vectors=[], uid_tables=[],
                             subset_path=lambda d: d, clip_scores=lambda n: [f"{n}.parquet"], pool_source=source,
                             metadata_files=lambda features: ["m.parquet"] + (["m.npz"] if features else []))

    assert inputs("tb") == {"metadata": ["m.parquet"], "synsets": "ids.txt"}
    assert inputs("img") == {"metadata": ["m.parquet", "m.npz"], "centroids": "c.npy", "targets": "t.npy"}
    assert inputs("seed_scored") == {"attributes": ["a.parquet"], "scores": ["seed_scored.parquet"]}
    # basic_filter reads the metadata on a CommonPool, the downloaded pool's attributes elsewhere
    assert inputs("basic") == {"metadata": ["m.parquet"]}
    assert inputs("basic", "url_list") == {"attributes": ["a.parquet"]}
    assert not from_metadata(subsets["seed_scored"], "datacomp")
