"""Sample ids the DataComp way: 32 lowercase hex chars, stored in subset files as (u8, u8) pairs."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

import numpy as np

from modeflow.common.errors import InputDataError

UID_DTYPE = np.dtype("u8,u8")
UID_PATTERN = "^[0-9a-f]{32}$"  # for Python's re here, for pyarrow.compute (RE2) in pool.sources
_UID_RE = re.compile(UID_PATTERN)


def derive_uid(url: str, caption: str) -> str:
    """128-bit hash of url and caption, for pools that come without a uid column.

    The separator keeps ("ab", "c") and ("a", "bc") apart.
    """
    digest = hashlib.sha256(url.encode("utf-8") + b"\x00" + caption.encode("utf-8")).hexdigest()
    return digest[:32]


def is_valid_uid(uid: str) -> bool:
    # fullmatch: with match, the pattern's `$` would also accept a uid followed by "\n"
    return isinstance(uid, str) and _UID_RE.fullmatch(uid) is not None


def _arrow_uid_digits(uids) -> np.ndarray | None:
    """(n, 32) uint8 straight from the buffers of a pyarrow string column whose values are all 32
    bytes (no Python string per uid); None for anything else."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    if isinstance(uids, pa.ChunkedArray):
        uids = uids.combine_chunks()
    if not isinstance(uids, (pa.StringArray, pa.LargeStringArray)) or uids.null_count:
        return None
    width = np.int64 if isinstance(uids, pa.LargeStringArray) else np.int32
    offsets = np.frombuffer(uids.buffers()[1], width, count=len(uids) + 1, offset=uids.offset * np.dtype(width).itemsize)
    if len(uids) == 0 or not (np.diff(offsets) == 32).all():
        return None
    return np.frombuffer(uids.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(len(uids), 32)


def uid_pairs(uids, where: str = "") -> np.ndarray:
    """uid strings (an iterable, or a pyarrow string column) -> (high, low) u8 pairs in the given
    order (vectorised; `where` names the source in the error for a malformed uid)."""
    raw = None
    digits = _arrow_uid_digits(uids)
    if digits is None:
        # a byte wider than a uid, so that a longer string (a trailing "\n" too) is not cut to one
        raw = np.asarray(list(uids.to_pylist() if hasattr(uids, "to_pylist") else uids), dtype="S33")
        digits = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(len(raw), 33)[:, :32] if len(raw) else \
            np.zeros((0, 32), np.uint8)
        wrong_length = np.char.str_len(raw) != 32
    else:
        wrong_length = np.zeros(len(digits), bool)
    value = np.where(digits >= ord("a"), digits - ord("a") + 10, digits - ord("0")).astype(np.uint64)
    bad = ((digits < ord("0")) | ((digits > ord("9")) & (digits < ord("a"))) | (digits > ord("f"))).any(1)
    bad |= wrong_length
    if bad.any():
        first = int(np.argmax(bad))
        shown = bytes(raw[first]) if raw is not None else bytes(digits[first])
        raise InputDataError(f"{where}: invalid uid {shown!r} (expected 32 lowercase hex chars)")
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    out = np.empty(len(digits), dtype=UID_DTYPE)
    out["f0"] = (value[:, :16] << shifts).sum(1, dtype=np.uint64)
    out["f1"] = (value[:, 16:] << shifts).sum(1, dtype=np.uint64)
    return out


def uid_keys(pairs: np.ndarray) -> np.ndarray:
    """(high, low) pairs as 16-byte big-endian strings: same order as the pairs, but numpy sorts
    and searches them several times faster than structured arrays."""
    out = np.empty((len(pairs), 2), dtype=">u8")
    out[:, 0], out[:, 1] = pairs["f0"], pairs["f1"]
    return out.view("S16").ravel()


def sort_pairs(pairs: np.ndarray) -> np.ndarray:
    return pairs[np.argsort(uid_keys(pairs), kind="stable")]


def is_sorted(pairs: np.ndarray) -> bool:
    """Whether pairs are in DataComp's order (np.searchsorted needs it)."""
    hi, lo = pairs["f0"], pairs["f1"]
    step_hi = hi[1:] > hi[:-1]
    same_hi = hi[1:] == hi[:-1]
    return bool(np.all(step_hi | (same_hi & (lo[1:] >= lo[:-1]))))


def uids_to_pairs(uids: Iterable[str]) -> np.ndarray:
    """uid strings -> DataComp's (high, low) u8 pairs, sorted as subset files require."""
    return sort_pairs(uid_pairs(uids))


def pairs_to_uids(pairs: np.ndarray) -> list[str]:
    return [f"{int(hi):016x}{int(lo):016x}" for hi, lo in pairs.tolist()]
