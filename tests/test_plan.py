"""Static shard planning from config and cheap metadata."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modeflow.config.schema import validate_config
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.plan import plan_shards
from modeflow.pool.table import count_rows


def test_demo_plan_from_config():
    cfg = validate_config({"pool": {"demo": {"num_samples": 250}}, "download": {"shard_size": 100}})
    plan = plan_shards(cfg)
    assert plan.shards == ("00000", "00001", "00002")
    assert plan.num_rows == 250


def test_url_list_rows_from_parquet_footer_and_csv(tmp_path):
    pq.write_table(pa.table({"url": ["a"] * 7, "caption": ["c"] * 7}), tmp_path / "u.parquet")
    (tmp_path / "u.csv").write_text("url,caption\n" + "x,y\n" * 5)
    assert count_rows(str(tmp_path / "u.parquet")) == 7
    assert count_rows(str(tmp_path / "u.csv")) == 5
    cfg = validate_config(
        {"pool": {"source": "url_list", "url_list": {"path": str(tmp_path / "u.parquet")}},
         "download": {"shard_size": 3}}
    )
    assert plan_shards(cfg).shards == ("00000", "00001", "00002")


def test_unknown_extension_asks_for_format(tmp_path):
    (tmp_path / "u.dat").write_text("x")
    with pytest.raises(ConfigError, match="format"):
        count_rows(str(tmp_path / "u.dat"))


def test_existing_shards_listed(tmp_path):
    for name in ("00001", "00000"):
        (tmp_path / f"{name}.tar").write_bytes(b"")
    cfg = validate_config({"pool": {"source": "shards", "shards": {"path": str(tmp_path)}}})
    assert plan_shards(cfg).shards == ("00000", "00001")


def test_existing_shards_dir_without_tars(tmp_path):
    cfg = validate_config({"pool": {"source": "shards", "shards": {"path": str(tmp_path)}}})
    with pytest.raises(InputDataError, match="no .tar shards"):
        plan_shards(cfg)


def test_local_shard_listing_matches_fsspec(tmp_path):
    """A local directory is listed with scandir (fast planning); it must agree with the fsspec
    listing a file:// url gets, other files ignored."""
    for name in ("00001.tar", "00000.tar", ".hidden.tar", "00000.parquet", "00000_stats.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.tar").mkdir()  # a directory named like a shard: listed by both, as before
    local = validate_config({"pool": {"source": "shards", "shards": {"path": str(tmp_path)}}})
    url = validate_config({"pool": {"source": "shards", "shards": {"path": f"file://{tmp_path}"}}})
    assert plan_shards(local).shards == plan_shards(url).shards
    assert "00000" in plan_shards(local).shards and "00000_stats" not in plan_shards(local).shards


def test_missing_url_list_is_named(tmp_path):
    cfg = validate_config({"pool": {"source": "url_list", "url_list": {"path": str(tmp_path / "nope.parquet")}}})
    with pytest.raises(InputDataError, match="nope.parquet"):
        plan_shards(cfg)


def test_auto_chunks_bound_jobs_per_stage(tmp_path):
    for i in range(1000):
        (tmp_path / f"{i:05d}.tar").write_bytes(b"")
    cfg = validate_config({"pool": {"source": "shards", "shards": {"path": str(tmp_path)}},
                           "jobs": {"max_jobs_per_stage": 64}})
    plan = plan_shards(cfg)
    assert len(plan.chunks) <= 64
    assert [s for members in plan.chunks.values() for s in members] == list(plan.shards)
    assert all(plan.chunk_of[s] == c for c, members in plan.chunks.items() for s in members)
    assert list(plan.chunks)[1] == "00016"  # a chunk is named after its first shard


def test_small_pool_has_one_shard_per_chunk_and_fixed_size_is_honoured():
    cfg = validate_config({"pool": {"demo": {"num_samples": 250}}, "download": {"shard_size": 100}})
    assert plan_shards(cfg).chunks == {"00000": ("00000",), "00001": ("00001",), "00002": ("00002",)}
    cfg = validate_config({"pool": {"demo": {"num_samples": 250}}, "download": {"shard_size": 100},
                           "jobs": {"shards_per_job": 2}})
    assert plan_shards(cfg).chunks == {"00000": ("00000", "00001"), "00002": ("00002",)}
