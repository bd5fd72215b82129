"""DataComp subset files: which pool samples a subset keeps, as the filters write them and the
reshard reads them.

One rule for reading and writing, DataComp's own: a `.npy` of a 1-d array whose dtype equals
np.dtype("u8,u8") (uid high, low 64 bits), sorted, a uid listed k times meaning k copies.
DataComp's resharder.py (`load_subset`) asserts exactly that dtype after np.load(..., mmap_mode="r"),
so a file whose fields have other names or another byte order is refused there too, and is refused
here rather than reinterpreted. Its matching uses np.searchsorted, which silently assumes the sort
order; here an unsorted file is an error. Its headerless raw-memmap variant is not accepted: without
a header a wrong file cannot be told from a subset. An empty subset is an error too: nothing would be
trained on it.
"""

from __future__ import annotations

import os

import numpy as np

from modeflow.common.atomic import save_npy
from modeflow.common.errors import InputDataError
from modeflow.common.uids import UID_DTYPE, is_sorted


def check_subset(pairs: np.ndarray, path: str | os.PathLike) -> None:
    """Raise InputDataError, naming `path`, unless `pairs` follows the subset-file rule."""
    if pairs.dtype != UID_DTYPE or pairs.ndim != 1:
        raise InputDataError(f"{path}: subset must be a 1-d array of dtype {UID_DTYPE} (uid high, low 64 bits) "
                             f"as DataComp's resharder requires, got dtype {pairs.dtype} shape {pairs.shape}")
    if len(pairs) == 0:
        raise InputDataError(f"{path}: subset is empty; no sample would be kept")
    if not is_sorted(pairs):
        raise InputDataError(f"{path}: subset is not sorted (DataComp matches with np.searchsorted); "
                             "sort it with np.sort before saving")


def read_subset_file(path: str | os.PathLike) -> np.ndarray:
    """A subset file's (high, low) uid pairs, checked against the rule above."""
    try:
        pairs = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputDataError(f"{path}: subset file not found") from None
    except (ValueError, OSError) as exc:
        raise InputDataError(f"{path}: not a numpy .npy subset file: {exc}") from None
    if not isinstance(pairs, np.ndarray):  # np.load opens a .npz archive as a mapping of arrays
        pairs.close()
        raise InputDataError(f"{path}: not a numpy .npy subset file (an .npz archive?)")
    check_subset(pairs, path)
    return pairs


def write_subset_file(path: str | os.PathLike, pairs: np.ndarray) -> None:
    """Write `pairs` as a subset file (atomically), checked against the rule above."""
    check_subset(pairs, path)
    save_npy(path, pairs)
