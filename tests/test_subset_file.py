"""DataComp subset files (modeflow.common.subset_file): the one rule for what is read and written."""

from __future__ import annotations

import numpy as np
import pytest

from modeflow.common.errors import InputDataError
from modeflow.common.subset_file import read_subset_file, write_subset_file
from modeflow.common.uids import UID_DTYPE

SORTED = np.array([(1, 5), (1, 5), (2, 0), (2**64 - 1, 3)], UID_DTYPE)  # (1, 5) listed twice: upsampled


def test_datacomp_recipe_is_read_as_saved(tmp_path):
    """DataComp's README: np.array of (int(uid[:16], 16), int(uid[16:32], 16)), dtype u8,u8, sorted, np.save."""
    path = tmp_path / "datacomp.npy"
    np.save(path, SORTED)
    got = read_subset_file(path)
    assert got.dtype == UID_DTYPE and got.tolist() == SORTED.tolist()


def test_written_as_np_save_writes_it_and_read_back(tmp_path):
    path, plain = tmp_path / "sub" / "s.npy", tmp_path / "plain.npy"
    write_subset_file(path, SORTED)
    np.save(plain, SORTED)
    assert path.read_bytes() == plain.read_bytes()
    assert read_subset_file(path).tolist() == SORTED.tolist()


def _renamed(arr: np.ndarray, dtype) -> np.ndarray:
    out = np.empty(len(arr), dtype)
    out[out.dtype.names[0]], out[out.dtype.names[1]] = arr["f0"], arr["f1"]
    return out


@pytest.mark.parametrize("name, array, message", [
    ("names", _renamed(SORTED, [("hi", "<u8"), ("lo", "<u8")]), "dtype"),  # DataComp asserts the dtype, names too
    ("big_endian", SORTED.astype(">u8,>u8"), "dtype"),
    ("signed", _renamed(SORTED, "i8,i8"), "dtype"),
    ("plain_ints", np.array([1, 2], np.int64), "dtype"),
    ("two_d", SORTED.reshape(2, 2), "1-d"),
    ("unsorted", SORTED[::-1].copy(), "not sorted"),
    ("empty", SORTED[:0], "empty"),
])
def test_refused_arrays_name_the_file_when_read_or_written(tmp_path, name, array, message):
    saved = tmp_path / f"{name}.npy"
    np.save(saved, array)
    with pytest.raises(InputDataError, match=f"{name}\\.npy: .*{message}"):
        read_subset_file(saved)
    target = tmp_path / f"out_{name}.npy"
    with pytest.raises(InputDataError, match=f"out_{name}\\.npy: .*{message}"):
        write_subset_file(target, array)
    assert not target.exists() and not list(tmp_path.glob(".tmp-*"))


def test_files_that_are_not_a_subset_npy_name_the_file(tmp_path):
    text, npz, pickled, raw = (tmp_path / n for n in ("text.npy", "archive.npz", "pickled.npy", "raw.bin"))
    text.write_text("uid\n")
    np.savez(npz, subset=SORTED)
    np.save(pickled, np.array([{"uid": 1}], dtype=object))
    raw.write_bytes(SORTED.tobytes())  # DataComp's headerless memmap variant: not accepted
    for path in (text, npz, pickled, raw):
        with pytest.raises(InputDataError, match=f"{path.name}: not a numpy .npy subset file"):
            read_subset_file(path)
    with pytest.raises(InputDataError, match="none.npy: subset file not found"):
        read_subset_file(tmp_path / "none.npy")
