"""Which experts get a kept sample, and how many times: the subset's multiplicity of its uid
(DataComp's upsampling) and the out-of-cluster draw."""

from __future__ import annotations

import numpy as np

from modeflow.common.uids import uid_keys


def multiplicity(subset: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """How many times each uid is listed in the (sorted) subset (0 = not kept; k > 1 = upsampled)."""
    keys, queries = uid_keys(subset), uid_keys(pairs)
    return np.searchsorted(keys, queries, side="right") - np.searchsorted(keys, queries, side="left")


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed, well-mixed hash (uint64 arithmetic wraps by design)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uid_hash(seed: int, pairs: np.ndarray, salt: int) -> np.ndarray:
    """A uint64 per uid from a hash of (seed, uid, salt): depends on nothing else (not the row
    order, the chunking or the clustering)."""
    with np.errstate(over="ignore"):
        key = np.uint64(seed % 2**64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt % 2**64)
        x = _mix64(pairs["f0"] ^ _mix64(np.full(len(pairs), key, dtype=np.uint64)))
        return _mix64(x ^ pairs["f1"])


def ooc_draw(seed: int, pairs: np.ndarray, expert: int) -> np.ndarray:
    """Uniform [0, 1) per uid from a hash of (seed, uid, expert): the out-of-cluster decision
    depends on nothing else, so chunking and parallelism cannot change it."""
    return (uid_hash(seed, pairs, expert) >> np.uint64(11)).astype(np.float64) / 2.0**53
