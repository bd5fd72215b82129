"""The download step: the loopback demo proxy (modeflow.demo.httpserver) and real img2dataset runs
(modeflow.pool.download) on a tiny pool with dead links, corrupt bytes, file:// urls and an empty shard."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from modeflow.pool import download as download_mod
from modeflow.pool.download import download_shards, img2dataset_args, plot_summary, summarize
from modeflow.demo.httpserver import DEMO_HOST, serve_demo
from modeflow.wds.reader import iter_samples, read_captions
from modeflow.wds.tarwrite import write_sorted_tar
from modeflow.common.errors import InputDataError
from modeflow.common.uids import derive_uid

SHARD_SIZE = 10
SHARDS = ["00000", "00001", "00002", "00003", "00004"]
EMPTY_SHARD = "00002"  # its rows [20, 30) are not in the pool (as if dropped as duplicates)
DEAD_ROW, CORRUPT_ROW = 7, 13
OPTIONS = {"shard_size": SHARD_SIZE, "threads": 4, "processes": 1, "image_size": 24,
           "resize_mode": "border", "encode_format": "jpg", "encode_quality": 90, "retries": 0, "timeout": 10}


# ---------------------------------------------------------------------------- loopback proxy

def _child_pids() -> set[int]:
    """Pids of this process's live children (Linux /proc): how the test finds the server's pid."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _get(url: str, proxy: str | None) -> bytes:
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    with urllib.request.build_opener(*handlers).open(url, timeout=10) as response:
        return response.read()


def test_serve_demo_proxies_only_the_demo_host_and_stops(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a b.png").write_bytes(b"png bytes")
    (tmp_path / "secret.txt").write_text("outside images/ but inside the root")
    (tmp_path.parent / f"{tmp_path.name}-outside.txt").write_text("outside the root")
    before = _child_pids()
    with serve_demo(tmp_path) as proxy:
        (pid,) = _child_pids() - before
        assert proxy.startswith("http://127.0.0.1:")
        assert _get(f"http://{DEMO_HOST}/images/a%20b.png", proxy) == b"png bytes"
        assert _get(f"{proxy}/images/a%20b.png", None) == b"png bytes"  # direct request, same file
        for url, code in [(f"http://{DEMO_HOST}/images/missing.png", 404),
                          (f"http://{DEMO_HOST}/../{tmp_path.name}-outside.txt", 404),
                          (f"http://{DEMO_HOST}/images/%2e%2e/%2e%2e/{tmp_path.name}-outside.txt", 404),
                          ("http://example.com/images/a%20b.png", 502)]:
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(url, proxy)
            assert err.value.code == code, url
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped, not a zombie
    assert pid not in _child_pids()


def test_serve_demo_stops_its_child_when_the_body_raises(tmp_path):
    before = _child_pids()
    with pytest.raises(KeyError):
        with serve_demo(tmp_path):
            (pid,) = _child_pids() - before
            raise KeyError("boom")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_serve_demo_needs_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        with serve_demo(tmp_path / "nope"):
            pass


# ---------------------------------------------------------------------------- img2dataset runs

def _make_pool(root: Path) -> Path:
    """40 rows over shards 0-4: shard 2 empty, one 404, one corrupt image, shard 4 as file:// urls."""
    images, local = root / "served" / "images", root / "local"
    images.mkdir(parents=True)
    local.mkdir()
    rows, urls, captions = [], [], []
    for row in [r for r in range(5 * SHARD_SIZE) if not 20 <= r < 30]:
        name = f"{row:03d}.{'png' if row % 2 else 'jpg'}"
        if row >= 40:  # the image_folder case: img2dataset reads file:// urls itself
            Image.new("RGB", (10 + row, 12), (row * 5, 80, 160)).save(local / name)
            url = (local / name).as_uri()
        else:
            url = f"http://{DEMO_HOST}/images/{name}"
            if row == CORRUPT_ROW:
                (images / name).write_bytes(b"<html>not an image</html>")
            elif row != DEAD_ROW:  # the dead link has no file: the server answers 404
                Image.new("RGB", (10 + row, 12), (row * 5, 160, 80)).save(images / name)
        rows.append(row), urls.append(url), captions.append(f"caption of row {row}")
    table = pa.table({"row": pa.array(rows, pa.int64()),
                      "uid": [derive_uid(u, c) for u, c in zip(urls, captions)],
                      "url": urls, "caption": captions, "license": [f"lic{r % 3}" for r in rows]})
    pq.write_table(table, root / "pool.parquet")
    return root / "pool.parquet"


def _download(root: Path, out: str, shards=SHARDS, staging="staging", options=OPTIONS, store=None) -> dict:
    with serve_demo(root / "served") as proxy:
        return download_shards(root / "pool.parquet", shards, shard_size=SHARD_SIZE, out_dir=root / out,
                               staging_dir=root / staging, options=options, proxy=proxy,
                               extra_cols=["license"], store_dir=store and root / store)


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """One real img2dataset run, killed while moving its shards out and then resumed: the rerun
    must finish from staging alone (img2dataset not run again) with outputs as if never killed."""
    root = tmp_path_factory.mktemp("dl")
    pool = pq.read_table(_make_pool(root))
    move = download_mod._move_shard
    moved = []

    def killed_on_third_move(*args):
        if len(moved) == 2:
            raise KeyboardInterrupt("killed")
        moved.append(args[-1])
        move(*args)

    def no_download(*args):
        raise AssertionError("every shard was staged: nothing to download again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(download_mod, "_move_shard", killed_on_third_move)
        with pytest.raises(KeyboardInterrupt):
            _download(root, "out")
    assert moved == ["00000", "00001"] and (root / "staging" / "manifest.json").exists()
    assert sorted(p.name for p in (root / "out").iterdir())[:1] == ["00000.parquet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(download_mod, "_run_img2dataset", no_download)
        summary = _download(root, "out")
    return root, pool, summary


def test_shard_with_lost_rows_is_an_error_and_retried_on_rerun(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    pq.write_table(pa.table({"key": ["0", "1", "2"]}), output / "00000.parquet")
    (output / "00000_stats.json").write_text("{}")
    with pytest.raises(RuntimeError, match=r"shard 00007: img2dataset recorded 3 of 5 rows"):
        download_mod._check_staged(output, 0, "00007", 5)
    assert not (output / "00000_stats.json").exists()  # incremental mode will redo it


def _members(tar: Path) -> dict[str, bytes]:
    with tarfile.open(tar) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def test_every_shard_has_its_three_files_under_its_global_name(downloaded):
    root, _, summary = downloaded
    assert sorted(p.name for p in (root / "out").iterdir()) == sorted(
        f"{s}{suffix}" for s in SHARDS for suffix in (".tar", ".parquet", "_stats.json"))
    assert not (root / "staging").exists()
    assert summary["shard_names"] == SHARDS and summary["num_shards"] == 5


def test_every_row_is_recorded_failures_included(downloaded):
    root, pool, summary = downloaded
    meta = pa.concat_tables([pq.read_table(root / "out" / f"{s}.parquet") for s in SHARDS])
    assert sorted(meta.column("uid").to_pylist()) == sorted(pool.column("uid").to_pylist())
    by_uid = {r["uid"]: r for r in meta.to_pylist()}
    for r in pool.to_pylist():
        got = by_uid[r["uid"]]
        assert (got["url"], got["caption"], got["license"]) == (r["url"], r["caption"], r["license"])
        if r["row"] == DEAD_ROW:
            assert got["status"] == "failed_to_download" and "404" in got["error_message"]
        elif r["row"] == CORRUPT_ROW:
            assert got["status"] == "failed_to_resize" and got["error_message"]
        else:
            assert got["status"] == "success", got
            assert got["original_width"] == 10 + r["row"] and got["original_height"] == 12
            assert got["width"] == got["height"] == OPTIONS["image_size"] and len(got["sha256"]) == 64
    assert summary["count"] == 40 and summary["successes"] == 38
    assert summary["failed_to_download"] == summary["failed_to_resize"] == 1
    assert summary["success_rate"] == pytest.approx(38 / 40)
    reasons = summary["failure_reasons"]
    assert sum(reasons.values()) == 2 and any("404" in msg for msg in reasons), reasons


def test_samples_carry_their_uid_and_rows_stay_in_their_shard(downloaded):
    root, pool, _ = downloaded
    row_of = dict(zip(pool.column("uid").to_pylist(), pool.column("row").to_pylist()))
    for s in SHARDS:
        tar = root / "out" / f"{s}.tar"
        uids, captions = read_captions(str(tar))
        assert all(int(s) * SHARD_SIZE <= row_of[u] < (int(s) + 1) * SHARD_SIZE for u in uids)
        assert captions == [f"caption of row {row_of[u]}" for u in uids]
        for sample in iter_samples(str(tar), want=("json", "jpg")):
            meta = json.loads(sample["json"])
            assert meta["key"] == sample["__key__"] and meta["license"] and sample["jpg"][:2] == b"\xff\xd8"
        table = pq.read_table(root / "out" / f"{s}.parquet")
        expected = 0 if s == EMPTY_SHARD else 10 - (s == "00000") - (s == "00001")
        assert len(uids) == expected and table.num_rows == (0 if s == EMPTY_SHARD else 10)
    # file:// rows (shard 4) downloaded like http ones
    assert len(read_captions(str(root / "out" / "00004.tar"))[0]) == 10


def test_shards_are_written_in_key_order(downloaded):
    root, _, _ = downloaded
    for s in SHARDS:
        with tarfile.open(root / "out" / f"{s}.tar") as t:
            names = t.getnames()
            assert names == sorted(names) and len(names) == len(set(names))
        keys = pq.read_table(root / "out" / f"{s}.parquet").column("key").to_pylist()
        assert keys == sorted(keys)


def test_empty_shard_has_the_schema_of_real_ones(downloaded):
    root, _, _ = downloaded
    empty = pq.read_schema(root / "out" / f"{EMPTY_SHARD}.parquet")
    real = pq.read_schema(root / "out" / "00000.parquet")
    assert empty.remove_metadata().equals(real.remove_metadata())
    for column in ("sha256", "original_width", "original_height", "uid", "license", "status"):
        assert column in empty.names
    assert list(iter_samples(str(root / "out" / f"{EMPTY_SHARD}.tar"))) == []
    stats = json.loads((root / "out" / f"{EMPTY_SHARD}_stats.json").read_text())
    assert stats["count"] == 0 and stats["status_dict"] == {}


def test_resume_redownloads_only_the_missing_shard_and_ignores_stale_staging(downloaded, tmp_path):
    root, _, summary = downloaded
    for name in ("served", "local", "pool.parquet"):
        os.symlink(root / name, tmp_path / name)
    shutil.copytree(root / "out", tmp_path / "out")
    before = {p.name: p.stat().st_ino for p in (tmp_path / "out").iterdir()}
    original = _members(root / "out" / "00001.tar")
    for suffix in (".tar", ".parquet", "_stats.json"):
        (tmp_path / "out" / f"00001{suffix}").unlink()
    # A killed run of another job left staging with a "finished" staged shard 1 (00001's staged
    # index in this job too): taking it would move its junk into out/ without downloading.
    output = tmp_path / "staging" / "output"
    output.mkdir(parents=True)
    (tmp_path / "staging" / "manifest.json").write_text(json.dumps({"fingerprint": "old", "shards": SHARDS}))
    (output / "00001.tar").write_bytes(b"stale")
    (output / "00001.parquet").write_bytes(b"stale")
    (output / "00001_stats.json").write_text(json.dumps({"count": 99}))

    assert _download(tmp_path, "out") == summary
    after = {p.name: p.stat().st_ino for p in (tmp_path / "out").iterdir()}
    assert after.keys() == before.keys()
    changed = sorted(name for name in after if after[name] != before[name])
    assert changed == ["00001.parquet", "00001.tar", "00001_stats.json"]
    assert _members(tmp_path / "out" / "00001.tar") == original  # same keys, uids, image bytes
    redone = pq.read_table(tmp_path / "out" / "00001.parquet").drop_columns(["exif"])
    assert redone.equals(pq.read_table(root / "out" / "00001.parquet").drop_columns(["exif"]))
    assert not (tmp_path / "staging").exists()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_sorted_tar_copy_keeps_members_whole(tmp_path, fmt):
    """Samples written in completion order (pax headers, as webdataset's float mtimes need, or GNU
    ones; a long name) come out in key order with every member's bytes and metadata unchanged."""
    src, dst = tmp_path / "shuffled.tar", tmp_path / "sorted.tar"
    contents = {}
    with tarfile.open(src, "w", format=fmt) as tar:
        for key in [3, 0, 11, 7, 1]:
            for ext in ("jpg", "json", "txt"):
                name = f"{key:06d}.{ext}" if key != 11 else f"{key:06d}.{'x' * 120}.{ext}"
                contents[name] = f"{name} ".encode() * (key * 40 + 1)  # sizes across block edges
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(contents[name]), 1.5e9 + key + 0.25
                tar.addfile(info, io.BytesIO(contents[name]))
    write_sorted_tar(src, dst)
    with tarfile.open(dst) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(contents)
        assert {m.name: tar.extractfile(m).read() for m in members} == contents
        assert all(int(m.mtime) == 1.5e9 + int(m.name[:6]) for m in members)
    keys = [s["__key__"] for s in iter_samples(str(dst))]
    assert keys == ["000000", "000001", "000003", "000007", "000011"]


def test_img2dataset_args_map_config_keys():
    args = img2dataset_args("in", "out", shard_size=7, options={**OPTIONS, "unknown": 1}, extra_cols=["x"])
    assert args["thread_count"] == 4 and args["processes_count"] == 1 and args["image_size"] == 24
    assert args["number_sample_per_shard"] == 7 and args["save_additional_columns"] == ["uid", "x"]
    assert args["incremental_mode"] == "incremental" and "unknown" not in args and "shard_size" not in args


def test_summarize_and_plot(downloaded, tmp_path):
    root, _, summary = downloaded
    again = summarize([root / "out" / f"{s}_stats.json" for s in SHARDS])
    assert again == {k: v for k, v in summary.items() if k != "shard_names"}
    assert again["empty_shards"] == ["00002"]  # named in the summary, not only warned about
    assert again["shards"]["00002"] == {"rows": 0, "successes": 0}
    assert again["shards"]["00000"] == {"rows": 10, "successes": 9}  # the 404
    assert again["shards"]["00001"] == {"rows": 10, "successes": 9}  # the corrupt image
    assert summarize([]) == {"num_shards": 0, "count": 0, "successes": 0, "failed_to_download": 0,
                             "failed_to_resize": 0, "success_rate": None, "failure_reasons": {},
                             "empty_shards": [], "shards": {}}
    for name, data in [("with_failures.png", summary), ("clean.png", {**summary, "failure_reasons": {}})]:
        plot_summary(data, tmp_path / name)
        with Image.open(tmp_path / name) as png:
            assert png.format == "PNG" and png.size[0] > 100


def test_a_rerun_never_downloads_a_stored_pool_again(downloaded):
    """The workflow manager deletes a job's output before rerunning it (changed params or code):
    the shards stay in the store, so the rerun links them back without downloading; a change that
    would alter their bytes stops with both ways forward instead of an empty re-download."""
    root, _, summary = downloaded
    first = _download(root, "o1", staging="staging_store", store="store")
    assert first == summary
    shutil.rmtree(root / "o1")

    def no_download(*args):
        raise AssertionError("the store holds every shard: nothing to download again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(download_mod, "_run_img2dataset", no_download)
        again = _download(root, "o2", staging="staging_store", store="store",
                          options={**OPTIONS, "threads": 2, "timeout": 3})  # how, not what: shards kept
    assert again == summary
    for shard in SHARDS:
        assert _members(root / "o2" / f"{shard}.tar") == _members(root / "out" / f"{shard}.tar")
        assert (root / "o2" / f"{shard}.tar").stat().st_ino == (root / "store" / f"{shard}.tar").stat().st_ino
    with pytest.raises(InputDataError, match=r"image_size.*were \[24\], now \[32\].*delete .*store"):
        _download(root, "o3", staging="staging_store", store="store", options={**OPTIONS, "image_size": 32})
    assert not (root / "o3").exists()


def test_a_store_recorded_before_resize_only_if_bigger_existed_is_still_valid(tmp_path):
    """Stores written before modeflow passed `resize_only_if_bigger` hold img2dataset's default
    (False): passing False now must not count as changed settings; True does."""
    from modeflow.pool.download import STORE_RECORD, SUFFIXES, _check_store, _output_options, _rows_digest

    rows = pa.table({"uid": ["a"], "url": ["http://x/a.png"], "caption": ["a"]})
    old = _output_options({k: v for k, v in OPTIONS.items()}, SHARD_SIZE, [])
    old.pop("resize_only_if_bigger", None)
    for suffix in SUFFIXES:
        (tmp_path / f"00000{suffix}").write_bytes(b"")
    (tmp_path / STORE_RECORD).write_text(json.dumps({"settings": old, "shards": {"00000": _rows_digest(rows)}}))
    now = _output_options({**OPTIONS, "resize_only_if_bigger": False}, SHARD_SIZE, [])
    _check_store(tmp_path, ["00000"], {"00000": rows}, now)
    with pytest.raises(InputDataError, match=r"resize_only_if_bigger.*were \[False\], now \[True\]"):
        _check_store(tmp_path, ["00000"], {"00000": rows},
                     _output_options({**OPTIONS, "resize_only_if_bigger": True}, SHARD_SIZE, []))
