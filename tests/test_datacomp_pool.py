"""A DataComp CommonPool directory as a pool: its metadata, npz features and shards are read and
checked (modeflow.pool.datacomp), and the shards' own parquets locate every sample for the reshard
without an encoder (modeflow.pool.shard_index)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datacomp_fixture import make_commonpool
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.datacomp import FEATURE_KEYS, METADATA_COLUMNS, CommonPool, read_features, shard_absent_report
from modeflow.pool.shard_index import shard_locations


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return make_commonpool(tmp_path_factory.mktemp("commonpool"), rows=120, parts=2, shard_rows=30, shard_size=10)


def test_the_fixture_has_datacomps_metadata_schema_and_npz_keys(pool):
    cp = CommonPool.open(str(pool.metadata))
    assert [str(p) for p in pool.parquets] == list(cp.parquets) and cp.num_rows() == 120
    for parquet in cp.parquets:
        table = pq.read_table(parquet)
        assert table.column_names == list(METADATA_COLUMNS)
        assert all(len(u) == 32 and int(u, 16) >= 0 for u in table["uid"].to_pylist())
        with np.load(cp.npz_of(parquet)) as npz:
            assert sorted(npz.files) == sorted(FEATURE_KEYS)
            for key, dim in FEATURE_KEYS.items():
                assert npz[key].dtype == np.float16 and npz[key].shape == (table.num_rows, dim)


def test_a_metadata_directory_without_parquets_is_an_error(tmp_path):
    with pytest.raises(InputDataError, match="no .parquet"):
        CommonPool.open(str(tmp_path))
    with pytest.raises(ConfigError, match="pool.datacomp.metadata: not a directory"):
        CommonPool.open(str(tmp_path / "absent"))


def test_a_missing_column_is_named_with_its_file(pool):
    cp = CommonPool.open(str(pool.metadata))
    with pytest.raises(InputDataError, match=rf"{cp.parquets[0]}: no column 'caption'.*needed by basic"):
        cp.read(cp.parquets[0], ["uid", "caption"], needed_by="basic")


def test_npz_rows_must_follow_their_parquet(pool, tmp_path):
    cp = CommonPool.open(str(pool.metadata))
    parquet = cp.parquets[0]
    assert read_features(parquet, cp.npz_of(parquet), "l14_txt").shape == (60, 768)
    short = tmp_path / "short.npz"
    np.savez(short, l14_txt=np.zeros((59, 768), np.float16))
    with pytest.raises(InputDataError, match=rf"{short}.*\(59, 768\).*{parquet} has 60 rows"):
        read_features(parquet, str(short), "l14_txt")
    with pytest.raises(InputDataError, match=rf"{short}: no array 'b32_img'"):
        read_features(parquet, str(short), "b32_img")


def test_shard_locations_come_from_the_shards_parquets_successes_only(pool):
    parquets = sorted(str(p) for p in pool.shards.glob("*.parquet"))
    loc = shard_locations(parquets)
    assert loc.column_names == ["uid", "shard", "key"]
    expected = []
    for p in parquets:
        t = pq.read_table(p)
        shard = p.rsplit("/", 1)[1].removesuffix(".parquet")
        expected += [(u, shard, k) for u, k, s in zip(t["uid"].to_pylist(), t["key"].to_pylist(),
                                                      t["status"].to_pylist()) if s == "success"]
    assert list(zip(*[loc[c].to_pylist() for c in loc.column_names])) == sorted(expected, key=lambda r: (r[1], r[2]))
    # every located sample is in its tar with the same uid in its json
    import tarfile

    for shard in {s for _, s, _ in expected}:
        with tarfile.open(pool.shards / f"{shard}.tar") as tar:
            uids = {json.loads(tar.extractfile(m).read())["uid"] for m in tar.getmembers() if m.name.endswith(".json")}
        assert uids == {u for u, s, _ in expected if s == shard}


def test_shard_locations_refuse_a_uid_written_twice(pool, tmp_path):
    parquet = sorted(pool.shards.glob("*.parquet"))[0]
    t = pq.read_table(parquet)
    copy = tmp_path / "00009.parquet"
    pq.write_table(t, copy)
    with pytest.raises(InputDataError, match=r"written 2 times.*'00000'.*'00009'"):
        shard_locations([str(parquet), str(copy)])


def test_shard_uids_absent_from_the_metadata_are_counted_and_reported(pool):
    parquets = sorted(str(p) for p in pool.shards.glob("*.parquet"))
    loc = shard_locations(parquets)
    tables = {s: loc.filter(pa.compute.equal(loc["shard"], s)) for s in sorted(set(loc["shard"].to_pylist()))}
    meta_uids = [u for p in pool.parquets for u in pq.read_table(p, columns=["uid"])["uid"].to_pylist()]
    report = shard_absent_report(tables, meta_uids)
    assert report["absent_from_metadata"] == 2 and sorted(report["examples"]) == sorted(pool.absent_uids)
    assert report["per_shard"] == {"00003": 2}
