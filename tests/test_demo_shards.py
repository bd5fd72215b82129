"""`modeflow demo-pool OUT --shards` (modeflow.demo.shards): the pool as img2dataset's webdataset
download of it, and pools of other domains or seeds whose uids never meet the default pool's."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image

from modeflow.cli import main as cli_main
from modeflow.demo import URL_PREFIX, generate_demo_pool
from modeflow.demo.shards import DEAD_LINK_ERROR, write_demo_shards

ROWS, SHARD_SIZE = 150, 60  # three shards: 60, 60, 30 rows
SMALL = dict(num_samples=ROWS, image_size=64, noise_fraction=0.2, eval_images_per_class=1, retrieval_pairs=4)
COLUMNS = ["uid", "caption", "url", "key", "status", "error_message", "width", "height", "original_width",
           "original_height", "exif", "sha256"]  # img2dataset's, in its order


@pytest.fixture(scope="module")
def clocks(tmp_path_factory):
    """A clocks pool at seed 1 with its shards, made by the cli as a user would: (dir, stdout, stderr)."""
    out = tmp_path_factory.mktemp("clocks") / "new"
    args = ["demo-pool", str(out), "--domains", "clocks", "--seed", "1", "--samples", str(ROWS),
            "--image-size", "64", "--eval-images-per-class", "1", "--retrieval-pairs", "4",
            "--shards", "--shard-size", str(SHARD_SIZE)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert cli_main(args) == 0
    return out, stdout.getvalue(), stderr.getvalue()


def _read_shards(shards):
    import webdataset as wds

    tars = sorted(str(p) for p in shards.glob("*.tar"))
    return list(wds.WebDataset(tars, shardshuffle=False))


def test_cli_writes_img2dataset_shards_of_the_pool(clocks):
    out, stdout, stderr = clocks
    assert json.loads(stdout) == json.loads((out / "demo.json").read_text())  # stdout: the summary
    [line] = stderr.strip().splitlines()
    assert line.startswith(f"{out / 'shards'}: 3 img2dataset webdataset shard(s) of {ROWS} rows")

    shards = out / "shards"
    names = ["00000", "00001", "00002"]
    assert sorted(p.name for p in shards.iterdir()) == sorted(
        f"{n}{suffix}" for n in names for suffix in (".tar", ".parquet", "_stats.json"))
    urls = pq.read_table(out / "urls.parquet").to_pandas()
    truth = pq.read_table(out / "ground_truth.parquet").to_pandas()
    tables = [pq.read_table(shards / f"{n}.parquet") for n in names]
    assert [t.num_rows for t in tables] == [60, 60, 30]
    assert all(t.column_names == COLUMNS for t in tables)
    rows = [r for t in tables for r in t.to_pylist()]
    assert len(rows) == len(urls) == ROWS
    # the pool's uids, urls and captions in the pool's order; img2dataset's keys (shard, row)
    assert [r["uid"] for r in rows] == urls.uid.tolist()
    assert [r["url"] for r in rows] == urls.url.tolist() and [r["caption"] for r in rows] == urls.caption.tolist()
    assert [r["key"] for r in rows] == [f"{s:05d}{i:02d}" for s, n in enumerate([60, 60, 30]) for i in range(n)]

    # noise rows fail as img2dataset records them; every other row is a 32 px sample
    status = {r["uid"]: r for r in rows}
    for uid, kind in zip(truth.uid, truth.noise):
        row = status[uid]
        if kind == "dead_link":
            assert (row["status"], row["error_message"]) == ("failed_to_download", DEAD_LINK_ERROR)
        elif kind == "corrupt":
            assert row["status"] == "failed_to_resize" and row["error_message"]
        else:
            assert row["status"] == "success" and row["error_message"] is None, (kind, row)
            assert (row["width"], row["height"]) == (32, 32) and row["exif"] == "{}"
            served = (out / "images" / row["url"][len(URL_PREFIX):]).read_bytes()
            assert row["sha256"] == hashlib.sha256(served).hexdigest()  # of the bytes served, as img2dataset
    ok = [r for r in rows if r["status"] == "success"]
    assert 0 < len(ok) < ROWS

    for name, table in zip(names, tables):
        stats = json.loads((shards / f"{name}_stats.json").read_text())
        shard_rows = table.to_pylist()
        by_status = {s: sum(r["status"] == s for r in shard_rows) for s in ("success", "failed_to_download",
                                                                           "failed_to_resize")}
        assert stats["count"] == len(shard_rows)
        assert (stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]) == (
            by_status["success"], by_status["failed_to_download"], by_status["failed_to_resize"])
        assert sum(stats["status_dict"].values()) == len(shard_rows)
        assert stats["status_dict"].get("success", 0) == by_status["success"]

    # read back with webdataset: every successful sample, with its jpg, txt and json, and no other
    samples = _read_shards(shards)
    assert [s["__key__"] for s in samples] == [r["key"] for r in ok]
    for sample, row in zip(samples, ok):
        assert {"jpg", "txt", "json"} <= set(sample)
        assert sample["txt"].decode() == row["caption"]
        assert json.loads(sample["json"]) == row
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.format == "JPEG" and image.size == (32, 32)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # albumentations, once per image
def test_shards_are_resized_by_img2dataset_and_deterministic(clocks, tmp_path):
    """Each jpg is img2dataset's Resizer output for the served file; writing again gives the same bytes."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset.resizer import Resizer

    out, _, _ = clocks
    resizer = Resizer(image_size=32, resize_mode="border", resize_only_if_bigger=False, encode_format="jpg")
    url_of = {r["key"]: r["url"] for p in (out / "shards").glob("*.parquet") for r in pq.read_table(p).to_pylist()}
    samples = _read_shards(out / "shards")
    for sample in samples[::10]:
        served = (out / "images" / url_of[sample["__key__"]][len(URL_PREFIX):]).read_bytes()
        assert sample["jpg"] == resizer(io.BytesIO(served))[0]
    again = write_demo_shards(out, tmp_path / "again", shard_size=SHARD_SIZE)
    assert again["shards"] == 3 and again["rows"] == ROWS
    for p in (out / "shards").iterdir():
        assert (tmp_path / "again" / p.name).read_bytes() == p.read_bytes(), p.name


def test_a_clocks_pool_shares_no_uid_with_the_default_pool(clocks, tmp_path):
    """The new data of a grown mixture: a clocks pool at seed 1 and the default four-domain pool at
    seed 0 have no url and no uid in common (the default's urls are untagged, the others' tagged)."""
    out, _, _ = clocks
    default = tmp_path / "default"
    generate_demo_pool(default, seed=0, **{**SMALL, "num_samples": 400, "image_size": 16})
    new, old = (pq.read_table(p / "urls.parquet").to_pandas() for p in (out, default))
    assert old.url[0] == f"{URL_PREFIX}000000.png"
    assert new.url[0] == f"{URL_PREFIX}clocks-seed1-000000.png"
    assert not set(new.url) & set(old.url)
    assert not set(new.uid) & set(old.uid)
    # the same caption on the same row would have given the same uid without the tag
    assert set(new.caption) & set(old.caption)  # e.g. the too-short "img"
    write_demo_shards(default, shard_size=1000)
    shard_uids = set(pq.read_table(default / "shards" / "00000.parquet")["uid"].to_pylist())
    assert shard_uids == set(old.uid)
    assert not shard_uids & {r for t in (out / "shards").glob("*.parquet") for r in pq.read_table(t)["uid"].to_pylist()}
