"""Per-expert reshard on a synthetic pool: tiny img2dataset-style tars (fixtures.write_shard, with
a pax header before every member as img2dataset's tars have), matching embed/assign tables."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from fixtures import Sample, write_shard
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.common.names import expert_name
from modeflow.reshard.index import index_chunk
from modeflow.reshard.membership import ooc_draw
from modeflow.reshard.write import absent_from_pool, write_expert
from modeflow.reshard.check import plot_experts, verify_experts
from modeflow.wds.tarindex import index_tar
from modeflow.common.uids import UID_DTYPE, uid_pairs, uids_to_pairs

N_EXPERTS = 3
PER_SHARD = 20
CHUNKS = {"c0": ["00000", "00001"], "c1": ["00002"]}


def uid_of(i: int) -> str:
    return hashlib.md5(f"s{i}".encode()).hexdigest()


def write_pool(root: Path, seed: int = 0, key_format: str = "{shard}{j:04d}"):
    """Tars + embed/assign parquets per chunk; sample i goes to expert i % 3 (expert 2 rarer)."""
    rng = np.random.default_rng(seed)
    i = 0
    for chunk, shards in CHUNKS.items():
        rows = {"uid": [], "shard": [], "key": []}
        for shard in shards:
            samples = [Sample(key_format.format(shard=shard, j=j), f"caption {i + j}", uid=uid_of(i + j),
                              jpg=rng.bytes(int(rng.integers(50, 900)))) for j in range(PER_SHARD)]
            write_shard(root / f"{shard}.tar", samples)
            rows["uid"] += [s.uid for s in samples]
            rows["shard"] += [shard] * len(samples)
            rows["key"] += [s.key for s in samples]
            i += len(samples)
        pq.write_table(pa.table(rows), root / f"embed_{chunk}.parquet")
        expert = [int(hashlib.md5(u.encode()).digest()[0]) % 4 % N_EXPERTS for u in rows["uid"]]
        pq.write_table(pa.table({"uid": rows["uid"], "fine": pa.array(expert, pa.int32()),
                                 "expert": pa.array(expert, pa.int32()),
                                 "distance": pa.array([0.1] * len(expert), pa.float32())}),
                       root / f"assign_{chunk}.parquet")
    return [uid_of(k) for k in range(i)]


def run(root: Path, subset_uids, *, out="experts", ooc_ratio=0.2, shard_size=7, shuffle=True, seed=1,
        empty_expert="error", subset_pairs=None):
    subset = root / "subset.npy"
    np.save(subset, uids_to_pairs(subset_uids) if subset_pairs is None else subset_pairs)
    index = []
    for chunk, shards in CHUNKS.items():
        idx = root / "index" / f"{chunk}.parquet"
        if not idx.exists():
            index_chunk(root / f"embed_{chunk}.parquet", root / f"assign_{chunk}.parquet", subset,
                        [str(root / f"{s}.tar") for s in shards], idx, root / "index" / f"{chunk}.json",
                        num_experts=N_EXPERTS, ooc_ratio=ooc_ratio, seed=seed)
        index.append(idx)
    dirs = [root / out / expert_name(e) for e in range(N_EXPERTS)]
    metas = [write_expert(index, subset, d, expert=e, num_experts=N_EXPERTS, shard_size=shard_size,
                          shuffle=shuffle, seed=seed, empty_expert=empty_expert, ooc_ratio=ooc_ratio)
             for e, d in enumerate(dirs)]
    return index, subset, dirs, metas


def tar_members(d: Path) -> dict:
    """{tar name: [(member name, bytes), ...]} of an expert directory."""
    out = {}
    for t in sorted(d.glob("*.tar")):
        with tarfile.open(t) as tar:
            out[t.name] = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    return out


def written_uids(d: Path) -> list[str]:
    return [json.loads(b)["uid"] for members in tar_members(d).values() for n, b in members if n.endswith(".json")]


def assignment(root: Path) -> dict:
    out = {}
    for chunk in CHUNKS:
        t = pq.read_table(root / f"assign_{chunk}.parquet")
        out.update(zip(t["uid"].to_pylist(), t["expert"].to_pylist()))
    return out


@pytest.fixture
def pool(tmp_path):
    return tmp_path, write_pool(tmp_path)


def test_index_tar_matches_tarfile(pool):
    root, _ = pool
    index = index_tar(str(root / "00000.tar"))
    with tarfile.open(root / "00000.tar") as tar:
        names = [m.name for m in tar.getmembers()]
    assert len(index.sample_keys) == PER_SHARD and len(index.member_block) == len(names)
    assert index.sample_keys[3] == b"000000003"
    assert np.all(index.sample_start[1:] == index.sample_end[:-1])  # samples tile the tar


def test_membership_counts_and_upsampling(pool):
    root, uids = pool
    subset = uids[::2] + [uids[4], uids[4], uids[10]]  # uid 4 listed 3 times, uid 10 twice
    index, subset_path, dirs, metas = run(root, subset, ooc_ratio=0.0)
    owner = assignment(root)
    for e, d in enumerate(dirs):
        got = sorted(written_uids(d))
        assert got == sorted(u for u in subset if owner[u] == e)
    assert sum(m["in_cluster_samples"] for m in metas) == len(subset)
    assert all(m["ooc_samples"] == 0 for m in metas)
    report = verify_experts(dirs, index, subset_path, deep=True)
    assert report["in_cluster_total"] == len(subset)


def test_ooc_share_and_determinism(pool):
    root, uids = pool
    index, subset, dirs, metas = run(root, uids, ooc_ratio=0.3)
    owner = assignment(root)
    for e, (d, meta) in enumerate(zip(dirs, metas)):
        others = [u for u in uids if owner[u] != e]
        got = written_uids(d)
        ooc = [u for u in got if owner[u] != e]
        assert len(ooc) == meta["ooc_samples"] > 0
        assert 0.1 * len(others) <= len(ooc) <= 0.5 * len(others)
        assert len(set(ooc)) == len(ooc)
        # the draw depends on (seed, uid, expert) only
        draws = ooc_draw(1, uid_pairs(others), e) < 0.3
        assert sorted(ooc) == sorted(np.asarray(others)[draws].tolist())
    verify_experts(dirs, index, subset, deep=True)
    # same seed, fresh run elsewhere -> byte-identical members
    other = root / "again"
    other.mkdir()
    for f in root.glob("*.tar"):
        shutil.copy(f, other / f.name)
    for f in root.glob("*_c*.parquet"):
        shutil.copy(f, other / f.name)
    _, _, dirs2, _ = run(other, uids, ooc_ratio=0.3)
    for d, d2 in zip(dirs, dirs2):
        assert tar_members(d) == tar_members(d2)
        assert (d / "meta.json").read_text().replace(str(root), "") == \
            (d2 / "meta.json").read_text().replace(str(other), "")


def test_shuffle_changes_order_not_content(pool):
    root, uids = pool
    _, _, dirs, _ = run(root, uids, out="a", shuffle=False)
    _, _, dirs_s, _ = run(root, uids, out="b", shuffle=True)
    plain, shuffled = written_uids(dirs[0]), written_uids(dirs_s[0])
    assert sorted(plain) == sorted(shuffled) and plain != shuffled
    assert plain == sorted(plain, key=uids.index)  # unshuffled: pool order


@pytest.mark.parametrize("pool_has_duplicate_uid", [False, True])
def test_absent_counts_with_upsampled_and_duplicate_uids(tmp_path, pool_has_duplicate_uid):
    """Absent subset entries are counted alike whether or not a uid occurs twice in the pool (the
    usual unique case counts from the rows' copies, the other searches the subset)."""
    a, b, c, gone = ([i, 10 * i] for i in (1, 2, 3, 4))
    subset = np.array([tuple(u) for u in (a, b, b, b, c, gone, gone)], dtype=UID_DTYPE)  # sorted
    rows = [(a, False, 1), (b, False, 3), (c, False, 1), (a, True, 1)]  # a also drawn out of cluster
    if pool_has_duplicate_uid:
        rows.append((c, False, 1))  # a second pool sample with c's uid, in another chunk
    tables = []
    for part in (rows[:2], rows[2:]):
        tables.append(pa.table({"uid_hi": pa.array([u[0] for u, _, _ in part], pa.uint64()),
                                "uid_lo": pa.array([u[1] for u, _, _ in part], pa.uint64()),
                                "ooc": [o for _, o, _ in part], "copies": pa.array([k for _, _, k in part], pa.int32())}))
    paths = []
    for i, t in enumerate(tables):
        paths.append(tmp_path / f"index{i}.parquet")
        pq.write_table(t, paths[-1])
    assert absent_from_pool(paths, subset) == {"absent_entries": 2, "absent_uids": 1}


def test_layout_meta_and_webdataset(pool):
    root, uids = pool
    extra = ["f" * 32, "e" * 32]
    _, _, dirs, metas = run(root, uids + extra, shard_size=7, ooc_ratio=0.1)
    d, meta = dirs[0], metas[0]
    n = meta["output_samples"]
    assert meta["shard_sizes"] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    assert meta["output_shard_count"] == len(meta["shard_sizes"]) == len(list(d.glob("*.tar")))
    assert meta["absent_entries"] == 2 and meta["absent_uids"] == 2 and meta["subset_entries"] == 62
    assert meta["output_shard_format"] == "{:08d}.tar"  # DataComp's train.py reads this key
    assert (meta["output_count"], meta["processed_count"]) == (n, meta["processed_samples"])
    assert meta["shard_pattern"] == f"{{00000000..{meta['output_shard_count'] - 1:08d}}}.tar"
    stats = json.loads((d / "00000000_stats.json").read_text())
    assert stats["count"] == stats["successes"] == 7
    ids = np.load(d / "sample_ids.npy")
    assert ids.dtype == UID_DTYPE and np.array_equal(ids, np.sort(ids)) and len(ids) == n
    # open_clip_train builds its url from the brace pattern; webdataset decodes jpg bytes + txt
    ds = wds.WebDataset(str(d / meta["shard_pattern"]), shardshuffle=False).to_tuple("__key__", "jpg", "txt", "json")
    samples = list(ds)
    assert len(samples) == n and len({k for k, *_ in samples}) == n
    owner = assignment(root)
    by_uid = {}
    for shard in ("00000", "00001", "00002"):
        for s in wds.WebDataset(str(root / f"{shard}.tar"), shardshuffle=False):
            by_uid[json.loads(s["json"])["uid"]] = s
    for key, jpg, txt, meta_json in samples:
        uid = json.loads(meta_json)["uid"]
        assert jpg == by_uid[uid]["jpg"] and txt == by_uid[uid]["txt"]
    assert sum(owner[json.loads(m)["uid"]] == 0 for *_, m in samples) == meta["in_cluster_samples"]


def test_subset_file_with_other_field_names_is_refused(pool):
    """DataComp's resharder asserts the dtype np.dtype("u8,u8"), field names included (the rule of
    modeflow.common.subset_file)."""
    root, uids = pool
    pairs = uids_to_pairs(uids[:30])
    renamed = np.empty(len(pairs), dtype=[("hi", "<u8"), ("lo", "<u8")])
    renamed["hi"], renamed["lo"] = pairs["f0"], pairs["f1"]
    with pytest.raises(InputDataError, match=r"subset\.npy: subset must be a 1-d array of dtype"):
        run(root, None, subset_pairs=renamed, ooc_ratio=0.0)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_tar_names_tar_and_member(pool, cut):
    root, uids = pool
    tar = root / "00002.tar"
    data = tar.read_bytes()
    tar.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputDataError, match=r"00002\.tar.*(member|marker)"):
        run(root, uids)
    assert (root / "index" / "c0.parquet").exists()  # the other chunk's finished part is kept


def test_corrupt_header_is_named(pool):
    root, uids = pool
    tar = root / "00001.tar"
    header = int(index_tar(str(tar)).member_block[4])
    data = bytearray(tar.read_bytes())
    data[512 * header + 130] ^= 0x01  # inside the size field of a member header
    tar.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match=r"00001\.tar: (corrupt tar header|truncated).*member"):
        run(root, uids)


def test_a_header_changed_after_indexing_stops_phase_2(pool):
    """A member header rewritten after phase 1 (still a valid tar, magic in place) is caught by its
    checksum field before a stale checksum is written."""
    root, uids = pool
    run(root, uids)  # phase 1 done: the index stays
    tar = root / "00000.tar"
    with tarfile.open(tar) as t:
        member = t.getmembers()[0]
    data = bytearray(tar.read_bytes())
    at = member.offset_data - 512  # the member's own header (pax headers come before it)
    header = data[at:at + 512]
    header[100:108] = b"0000600\0"  # another file mode, a valid header with a new checksum
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    data[at:at + 512] = header
    tar.write_bytes(bytes(data))
    with tarfile.open(tar) as t:
        assert t.getmembers()[0].mode == 0o600  # still a readable tar
    with pytest.raises(InputDataError, match="reshard index is stale"):
        run(root, uids, out="again")


def test_empty_expert_error_or_allow(pool):
    root, uids = pool
    owner = assignment(root)
    subset = [u for u in uids if owner[u] != 2]
    with pytest.raises(InputDataError, match="expert 02 has no samples"):
        run(root, subset, ooc_ratio=0.0)
    _, subset_path, dirs, metas = run(root, subset, ooc_ratio=0.0, empty_expert="allow", out="allow")
    assert metas[2]["empty"] and metas[2]["output_shard_count"] == 0 and metas[2]["shard_pattern"] is None
    assert not list(dirs[2].glob("*.tar")) and len(np.load(dirs[2] / "sample_ids.npy")) == 0
    verify_experts(dirs, sorted((root / "index").glob("*.parquet")), subset_path)


def test_empty_or_unsorted_subset_is_an_error(pool):
    root, uids = pool
    with pytest.raises(InputDataError, match="subset is empty"):
        run(root, [])
    shutil.rmtree(root / "index", ignore_errors=True)
    with pytest.raises(InputDataError, match="not sorted"):
        run(root, None, subset_pairs=uids_to_pairs(uids[:5])[::-1].copy())


def test_index_row_groups_per_expert_and_a_mixed_index_give_the_same_shards(pool):
    """Phase 1 writes each expert's rows as row groups of their own, which the expert's job reads
    alone; an index with experts mixed in a row group (an older writer) is filtered instead."""
    root, uids = pool
    index, _, dirs, _ = run(root, uids)
    for path in index:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("expert")
        stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)]
        assert meta.num_row_groups == N_EXPERTS and [(s.min, s.max) for s in stats] == [(e, e) for e in range(N_EXPERTS)]
        pq.write_table(pq.read_table(path), path)  # one row group, every expert in it
    _, _, mixed, _ = run(root, uids, out="mixed")
    for d, m in zip(dirs, mixed):
        assert [p.read_bytes() for p in sorted(d.glob("*.tar"))] == [p.read_bytes() for p in sorted(m.glob("*.tar"))]


def test_rerun_after_deleting_an_expert_is_identical(pool):
    root, uids = pool
    _, _, dirs, _ = run(root, uids)
    before = tar_members(dirs[1])
    shutil.rmtree(dirs[1])
    run(root, uids)
    assert tar_members(dirs[1]) == before
    assert not [p for p in dirs[1].parent.iterdir() if p.name.startswith(".tmp")]


def test_verify_catches_a_missing_sample_and_plot(pool):
    root, uids = pool
    index, subset, dirs, _ = run(root, uids)
    report = verify_experts(dirs, index, subset)
    plot_experts(report, root / "experts.png")
    assert (root / "experts.png").stat().st_size > 0
    ids = np.load(dirs[0] / "sample_ids.npy")
    np.save(dirs[0] / "sample_ids.npy", ids[1:])
    with pytest.raises(ModeflowError, match="sample_ids"):
        verify_experts(dirs, index, subset)


def test_embed_row_missing_from_tar(pool):
    root, uids = pool
    table = pq.read_table(root / "embed_c1.parquet").to_pydict()
    table["key"][0] = "nope"
    pq.write_table(pa.table(table), root / "embed_c1.parquet")
    with pytest.raises(InputDataError, match="'nope' of shard 00002 is not in"):
        run(root, uids)


def test_plain_tarfile_input_without_pax_headers(tmp_path):
    """Tars written by plain tarfile (ustar, no pax headers) index the same way."""
    path = tmp_path / "x.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key in ("a", "b"):
            for ext, data in (("jpg", b"1" * 600), ("txt", b"hi")):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    index = index_tar(str(path))
    assert index.sample_keys.tolist() == [b"a", b"b"]
    assert index.sample_end.tolist() == [5, 10] and index.member_block.tolist() == [0, 3, 5, 8]


@pytest.mark.parametrize("n_samples", [500, 700])  # 1000 / 1400 headers: both ways _octal parses sizes
def test_member_extents_match_tarfile_for_few_and_many_members(tmp_path, n_samples):
    path = tmp_path / "x.tar"
    rng = np.random.default_rng(n_samples)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for j in range(n_samples):
            for ext in ("jpg", "txt"):
                data = rng.bytes(int(rng.integers(0, 3000)))
                info = tarfile.TarInfo(f"{j:06d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    index = index_tar(str(path))
    assert index.member_block.tolist() == [m.offset // 512 for m in members]
    assert index.sample_end.tolist() == [-(-(m.offset_data + m.size) // 512) for m in members[1::2]]


def test_keys_of_other_widths_are_renamed(tmp_path):
    """Keys that are not 9 characters (not img2dataset's) go through the general rename path."""
    uids = write_pool(tmp_path, key_format="s{shard}_{j}")
    index, subset, dirs, metas = run(tmp_path, uids, shard_size=4)
    verify_experts(dirs, index, subset, deep=True)
    for d in dirs:
        keys = [k for k, _ in wds.WebDataset(str(d / "*.tar").replace("*", "{00000000..%08d}" % (
            len(list(d.glob("*.tar"))) - 1)), shardshuffle=False).to_tuple("__key__", "txt")]
        assert keys == sorted(keys) and all(len(k) == 9 and k.isdigit() for k in keys)


def test_output_does_not_depend_on_how_many_tars_stay_open(pool, monkeypatch):
    import modeflow.reshard.write as reshard

    root, uids = pool
    _, _, dirs, _ = run(root, uids, out="many")
    monkeypatch.setattr(reshard, "_MAX_OPEN_TARS", 1)  # reopen a tar at nearly every sample
    _, _, again, _ = run(root, uids, out="one")
    for a, b in zip(dirs, again):
        assert sorted(p.name for p in a.glob("*.tar")) == sorted(p.name for p in b.glob("*.tar"))
        for tar in a.glob("*.tar"):
            assert tar.read_bytes() == (b / tar.name).read_bytes()


@pytest.mark.parametrize("key_format", ["{shard}{j:04d}", "k{shard}_{j}"])  # same / other key width
@pytest.mark.parametrize("batch", [512, 6000])  # smaller than any sample; a few samples per batch
def test_output_does_not_depend_on_the_copy_batch(tmp_path, monkeypatch, key_format, batch):
    import modeflow.reshard.write as reshard

    uids = write_pool(tmp_path, key_format=key_format)
    monkeypatch.setattr(reshard, "_COPY_BATCH_BYTES", 1 << 40)  # a whole shard per batch
    _, _, whole, _ = run(tmp_path, uids, out="whole")
    monkeypatch.setattr(reshard, "_COPY_BATCH_BYTES", batch)
    _, _, batched, _ = run(tmp_path, uids, out="batched")
    for a, b in zip(whole, batched):
        tars = sorted(p.name for p in a.glob("*.tar"))
        assert tars and tars == sorted(p.name for p in b.glob("*.tar"))
        for tar in tars:
            assert (a / tar).read_bytes() == (b / tar).read_bytes()


def test_tar_shortened_after_indexing_is_an_error(pool):
    root, uids = pool
    index, subset, _, _ = run(root, uids)
    tar = root / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:tar.stat().st_size // 2])
    with pytest.raises(InputDataError, match="00001.tar: shorter than when it was indexed"):
        write_expert(index, subset, root / "again", expert=0, num_experts=N_EXPERTS, shard_size=7,
                     shuffle=True, seed=1)


def test_pooled_reshard_keeps_every_kept_sample_once_without_ooc(pool):
    """assign_path None: the seed's / dense model's data — the whole subset in one directory."""
    root, uids = pool
    subset_uids = uids[::2]
    subset = root / "subset.npy"
    np.save(subset, uids_to_pairs(subset_uids))
    index = []
    for chunk, shards in CHUNKS.items():
        idx = root / "pooled" / f"{chunk}.parquet"
        index_chunk(root / f"embed_{chunk}.parquet", None, subset, [str(root / f"{s}.tar") for s in shards],
                    idx, root / "pooled" / f"{chunk}.json", num_experts=1, ooc_ratio=0.0, seed=1)
        index.append(idx)
    meta = write_expert(index, subset, root / "all", expert=0, num_experts=1, shard_size=7, shuffle=True,
                        seed=1, label="pooled subset")
    assert meta["expert"] == "pooled subset" and meta["ooc_samples"] == 0
    assert sorted(written_uids(root / "all")) == sorted(subset_uids)
    with pytest.raises(ValueError):
        index_chunk(root / "embed_c0.parquet", None, subset, [], root / "x.parquet", root / "x.json",
                    num_experts=2, ooc_ratio=0.0, seed=1)


def test_empty_tars_reshard_as_no_samples(pool, monkeypatch):
    """A shard where every download failed is an empty tar (0 embed rows): beside a normal tar in
    a chunk, and as a chunk's only tar, phase 1 and phase 2 take it as no samples."""
    root, uids = pool
    _, _, before, _ = run(root, uids, out="before")
    shutil.rmtree(root / "index")
    write_shard(root / "00003.tar", [])  # as img2dataset leaves such a shard
    tarfile.open(root / "00004.tar", "w").close()
    monkeypatch.setitem(CHUNKS, "c1", ["00002", "00003"])
    monkeypatch.setitem(CHUNKS, "c2", ["00004"])
    for table in ("embed", "assign"):
        pq.write_table(pq.read_table(root / f"{table}_c1.parquet").slice(0, 0), root / f"{table}_c2.parquet")
    index, subset, after, metas = run(root, uids, out="after")
    assert json.loads((root / "index" / "c2.json").read_text())["pool_samples"] == 0
    assert pq.read_table(index[2]).num_rows == 0
    verify_experts(after, index, subset, deep=True)
    for a, b in zip(before, after):
        tars = sorted(p.name for p in a.glob("*.tar"))
        assert tars == sorted(p.name for p in b.glob("*.tar"))
        assert all((a / t).read_bytes() == (b / t).read_bytes() for t in tars)
