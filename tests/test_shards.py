"""Reading webdataset shards (modeflow.wds.reader): samples, captions/uids, and truncated-tar detection;
their byte-level index (modeflow.wds.tarindex): empty tars, member extents and names; and a tar's
shard name (modeflow.wds.shard_name)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import webdataset as wds

from fixtures import Sample, write_shard
from modeflow.common.errors import InputDataError
from modeflow.wds.reader import count_samples, iter_samples, read_captions
from modeflow.wds.shard_name import shard_of_tar
from modeflow.wds.tarindex import index_tar, member_extents
from modeflow.wds.tarwrite import write_empty_tar, write_sorted_tar
from modeflow.common.uids import derive_uid

UIDS = [derive_uid(f"u{i}", f"c{i}") for i in range(3)]


def _write_tar(path, members):
    """A tar that is not a well-formed shard: members [(name, bytes)] as given."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def good_tar(tmp_path):
    """Three samples, the json captions other than the .txt ones; returns the tar and its members."""
    path = write_shard(tmp_path / "00000.tar", [
        Sample("00000", "a red square", uid=UIDS[0], row={"caption": "json caption 0"}),
        Sample("00001", "café", uid=UIDS[1], row={"caption": "json caption 1"}),
        Sample("00002", "json caption 2", uid=UIDS[2], txt=False)])  # no .txt: caption from the json
    with tarfile.open(path) as tar:
        return path, tar.getmembers()


def test_iter_samples_groups_by_key_and_reads_only_wanted(good_tar):
    path, _ = good_tar
    samples = list(iter_samples(str(path), want=("json",)))
    assert [s["__key__"] for s in samples] == ["00000", "00001", "00002"]
    assert all(set(s) == {"__key__", "json"} for s in samples)
    assert json.loads(samples[1]["json"])["uid"] == UIDS[1]
    with_images = list(iter_samples(str(path), want=("JPG", "txt")))
    assert with_images[0]["jpg"].startswith(b"\xff\xd8") and with_images[0]["txt"] == b"a red square"
    assert "txt" not in with_images[2]
    assert count_samples(str(path)) == 3


def test_read_captions_txt_then_json_fallback(good_tar):
    uids, captions = read_captions(str(good_tar[0]))
    assert uids == UIDS
    assert captions == ["a red square", "café", "json caption 2"]


def test_empty_tar_has_no_samples(tmp_path):
    path = tmp_path / "empty.tar"
    tarfile.open(path, "w").close()
    assert read_captions(str(path)) == ([], [])


@pytest.mark.parametrize("cut", ["mid-member", "between-members", "mid-header"])
def test_truncated_tar_names_the_tar(good_tar, tmp_path, cut):
    path, members = good_tar
    data = path.read_bytes()
    first = members[3]  # sample 1's first member: sample 0 is complete before its (pax) header
    end = {"mid-member": first.offset_data + 100, "between-members": first.offset, "mid-header": first.offset + 200}[cut]
    cut_path = tmp_path / f"cut-{cut}.tar"
    cut_path.write_bytes(data[:end])
    with pytest.raises(InputDataError, match="truncated or corrupt tar") as err:
        read_captions(str(cut_path))
    assert str(cut_path) in str(err.value)
    with pytest.raises(InputDataError, match=str(cut_path)):
        count_samples(str(cut_path))


def test_shard_of_tar_strips_dirs_and_tar_suffix():
    assert shard_of_tar("/data/shards/00003.tar") == "00003"
    assert shard_of_tar("s3://bucket/pool/00012.tar") == "00012"


def test_missing_tar(tmp_path):
    with pytest.raises(InputDataError, match="shard not found"):
        read_captions(str(tmp_path / "gone.tar"))


def test_missing_or_bad_uid_in_json(tmp_path):
    path = tmp_path / "nouid.tar"
    _write_tar(path, [("00000.json", json.dumps({"uid": UIDS[0], "caption": "c"}).encode()),
                      ("00001.json", json.dumps({"caption": "no uid here"}).encode())])
    with pytest.raises(InputDataError, match=r"nouid.tar: sample '00001' has no valid uid .*got None"):
        read_captions(str(path))
    write_shard(path, [Sample("00000", "x", uid="ABC")])
    with pytest.raises(InputDataError, match=r"no valid uid .*'ABC'"):
        read_captions(str(path))
    write_shard(path, [Sample("00000", "x", uid=UIDS[0] + "\n")])  # not a uid, though `$` matches before "\n"
    with pytest.raises(InputDataError, match=r"no valid uid .*\\n'"):
        read_captions(str(path))


def test_sample_without_json(tmp_path):
    path = tmp_path / "nojson.tar"
    _write_tar(path, [("00000.jpg", b"x"), ("00000.txt", b"caption")])
    with pytest.raises(InputDataError, match=r"nojson.tar: sample '00000' has no .json member"):
        read_captions(str(path))


def test_invalid_json(tmp_path):
    path = tmp_path / "badjson.tar"
    _write_tar(path, [("00000.json", b"{not json")])
    with pytest.raises(InputDataError, match=r"badjson.tar: 00000.json is not valid json"):
        read_captions(str(path))


def test_txt_not_utf8(tmp_path):
    path = tmp_path / "latin1.tar"
    write_shard(path, [Sample("00000", "café".encode("latin-1"), uid=UIDS[0])])
    with pytest.raises(InputDataError, match=r"latin1.tar: 00000.txt is not valid UTF-8"):
        read_captions(str(path))


def test_duplicate_key_is_an_error(tmp_path):
    path = tmp_path / "dup.tar"
    _write_tar(path, [("00000.jpg", b"x"), ("00001.jpg", b"x"), ("00000.cls", b"3")])
    with pytest.raises(InputDataError, match="duplicate sample key '00000'"):
        list(iter_samples(str(path)))


# ---- byte-level index ---------------------------------------------------------------------------

def _empty_tar(path, writer: str) -> None:
    if writer == "tarfile":
        tarfile.open(path, "w").close()
    elif writer == "webdataset":  # what img2dataset leaves for a shard where every download failed
        with wds.TarWriter(str(path)):
            pass
    elif writer == "write_empty_tar":
        write_empty_tar(path)
    else:  # the download's sorted copy of such a shard: just the end-of-archive blocks
        _empty_tar(path.with_suffix(".src"), "webdataset")
        write_sorted_tar(path.with_suffix(".src"), path)


@pytest.mark.parametrize("writer", ["tarfile", "webdataset", "write_empty_tar", "sorted copy"])
def test_tar_without_members_indexes_to_an_empty_index(tmp_path, writer):
    path = tmp_path / "00000.tar"
    _empty_tar(path, writer)
    index = index_tar(str(path))
    assert len(index.sample_keys) == len(index.sample_start) == len(index.sample_end) == 0
    assert len(index.member_block) == len(index.member_chk_base) == len(index.member_chk_field) == 0
    start, end, names = member_extents(str(path))
    assert len(start) == len(end) == len(names) == 0
    assert read_captions(str(path)) == ([], [])


def test_zero_byte_file_is_a_truncated_tar(tmp_path):
    path = tmp_path / "00000.tar"
    path.write_bytes(b"")
    with pytest.raises(InputDataError, match="00000.tar: truncated tar"):
        index_tar(str(path))


def _long_name_tar(path, fmt) -> list[str]:
    names = ["b.txt", "a" * 60 + "/" + "x" * 90 + ".jpg", "c.json"]  # too long for the name field alone
    with tarfile.open(path, "w", format=fmt) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 700
            tar.addfile(info, io.BytesIO(bytes(700)))
    return names


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_member_extents_and_names_match_tarfile(tmp_path, fmt):
    """Long names as pax path records, GNU long-name headers or ustar prefixes are resolved as
    tarfile resolves them; each member's extent starts at its extension header."""
    path = tmp_path / "x.tar"
    _long_name_tar(path, fmt)
    start, end, names = member_extents(str(path))
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    assert [n.decode() for n in names] == [m.name for m in members]
    assert start.tolist() == [0, *end[:-1].tolist()]  # members tile the tar
    assert end.tolist() == [-(-(m.offset_data + m.size) // 512) for m in members]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_index_refuses_names_it_cannot_rename_in_place(tmp_path, fmt):
    path = tmp_path / "x.tar"
    _long_name_tar(path, fmt)
    with pytest.raises(InputDataError, match=r"x\.tar: member .* (unsupported tar feature|pax record\(s\) \['path'\])"):
        index_tar(str(path))
