"""Sample ids the DataComp way: 32 lowercase hex chars, stored in subset files as (u8, u8) pairs."""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

import numpy as np

UID_DTYPE = np.dtype("u8,u8")
_UID_RE = re.compile(r"^[0-9a-f]{32}$")


def derive_uid(url: str, caption: str) -> str:
    """128-bit hash of url and caption, for pools that come without a uid column.

    The separator keeps ("ab", "c") and ("a", "bc") apart.
    """
    digest = hashlib.sha256(url.encode("utf-8") + b"\x00" + caption.encode("utf-8")).hexdigest()
    return digest[:32]


def is_valid_uid(uid: str) -> bool:
    return isinstance(uid, str) and bool(_UID_RE.match(uid))


def uids_to_pairs(uids: Iterable[str]) -> np.ndarray:
    """uid strings -> DataComp's (high, low) u8 pairs, sorted as subset files require."""
    uids = list(uids)
    arr = np.empty(len(uids), dtype=UID_DTYPE)
    for i, uid in enumerate(uids):
        arr[i] = (int(uid[:16], 16), int(uid[16:32], 16))
    arr.sort()
    return arr


def pairs_to_uids(pairs: np.ndarray) -> list[str]:
    return [f"{int(hi):016x}{int(lo):016x}" for hi, lo in pairs.tolist()]
