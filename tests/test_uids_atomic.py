"""uid helpers (DataComp subset format) and atomic outputs."""

import os
from pathlib import Path

import numpy as np
import pytest

from modeflow.common.atomic import atomic_dir, atomic_path, save_npy, write_json
from modeflow.common.errors import InputDataError
from modeflow.common.uids import UID_DTYPE, derive_uid, is_valid_uid, pairs_to_uids, uid_pairs, uids_to_pairs


def test_derive_uid_is_stable_hex_and_separates_fields():
    uid = derive_uid("http://x/a.jpg", "a cat")
    assert is_valid_uid(uid) and uid == derive_uid("http://x/a.jpg", "a cat")
    assert derive_uid("ab", "c") != derive_uid("a", "bc")


def test_a_uid_with_a_trailing_newline_or_more_chars_is_refused():
    """32 hex chars and then a "\n" (where a regex `$` also matches) or any other char: not a uid,
    nor its first 32 chars."""
    import pyarrow as pa

    uid = derive_uid("http://x/a.jpg", "a cat")
    assert not is_valid_uid(uid + "\n") and not is_valid_uid(uid + "0")
    for bad in (uid + "\n", uid + "0"):
        for given in ([uid, bad], pa.array([uid, bad])):
            with pytest.raises(InputDataError, match=r"t\.parquet: invalid uid b'[0-9a-f]{32}(\\n|0)'"):
                uid_pairs(given, "t.parquet")


def test_pairs_roundtrip_sorted_like_datacomp():
    uids = [derive_uid(str(i), "c") for i in range(50)]
    pairs = uids_to_pairs(uids)
    assert pairs.dtype == UID_DTYPE
    as_tuples = pairs.tolist()
    assert as_tuples == sorted(as_tuples)
    # DataComp's README recipe builds the same pairs
    expected = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], dtype=UID_DTYPE)
    expected.sort()
    assert np.array_equal(pairs, expected)
    assert sorted(pairs_to_uids(pairs)) == sorted(uids)


def test_uid_pairs_from_an_arrow_column_match_python_strings():
    """A pyarrow string column is parsed from its buffers; the result and the errors are those of
    a list of str, chunked and sliced columns included."""
    import pyarrow as pa

    uids = [derive_uid(str(i), "c") for i in range(40)]
    column = pa.chunked_array([pa.array(uids[:15]), pa.array(uids[15:])])
    assert np.array_equal(uid_pairs(column), uid_pairs(uids))
    assert np.array_equal(uid_pairs(pa.array(uids).slice(7, 20)), uid_pairs(uids[7:27]))
    for bad in ("A" * 32, "abc", "g" * 32):
        for given in (uids[:3] + [bad], pa.array(uids[:3] + [bad])):
            with pytest.raises(InputDataError, match=f"t.parquet: invalid uid b'{bad}'"):
                uid_pairs(given, "t.parquet")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_helpers_write_final_names(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1})
    save_npy(tmp_path / "v.npy", np.arange(3))
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    assert np.load(tmp_path / "v.npy").tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "v.npy"]


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "y").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["x"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_atomic_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    from modeflow.common.atomic import atomic_dir, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_a_killed_writes_temp_is_removed_when_the_target_is_written_again(tmp_path):
    """A reshard killed inside atomic_dir left `.tmp-<name>.xxxxxxxx/` forever (issue 12)."""
    import tempfile

    target = tmp_path / "00"
    stale_dir = Path(tempfile.mkdtemp(prefix=".tmp-00.", dir=tmp_path))  # what a SIGKILL leaves
    (stale_dir / "half.tar").write_bytes(b"x")
    fd, stale_file = tempfile.mkstemp(prefix=".tmp-summary.json.", dir=tmp_path)
    os.close(fd)
    sibling = Path(tempfile.mkdtemp(prefix=".tmp-00.json.", dir=tmp_path))  # another target's temp
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("a")
    write_json(tmp_path / "summary.json", {"a": 1})
    assert not stale_dir.exists() and not Path(stale_file).exists()
    assert sibling.exists()  # `00.json` is another output: its writer, not `00`'s, owns that temp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["00", "summary.json", sibling.name])
