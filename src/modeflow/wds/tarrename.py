"""Renaming tar members in place, in a buffer of copied tar blocks: the reshard's running keys.

Renaming a member to a key of the same width touches only the key and the checksum field, whose
new value follows from the TarIndex.member_chk_base of modeflow.wds.tarindex; keys of another
width shift the rest of the name and recompute the checksum.
"""

from __future__ import annotations

import functools

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.wds.tarformat import BLOCK, CHKSUM, HEADER, NAME, member_name

_STALE = ("reshard index is stale: a recorded member header is not the one indexed any more "
          "(input tar changed after indexing; rerun reshard)")


def _check_headers(buf: np.ndarray, header_blocks: np.ndarray) -> None:
    if not (buf.view(HEADER)["magic"][header_blocks].view("S5") == b"ustar").all():
        raise InputDataError(_STALE)


def rename_members(buf: np.ndarray, header_blocks: np.ndarray, key_len: np.ndarray,
                   new_keys: np.ndarray) -> None:
    """Give the members at `header_blocks` of a tar image `buf` (uint8, whole blocks) new keys,
    keeping each member's extension, and fix their checksums: the general case, keys of any
    width (same-width keys take patch_members).

    key_len: length of each member's current key; new_keys: (m, w) uint8 ASCII of the new keys.
    """
    _check_headers(buf, header_blocks)
    blocks = buf.reshape(-1, BLOCK)
    width = new_keys.shape[1]
    heads = blocks[header_blocks]
    names = heads[:, NAME]
    src = key_len[:, None] + np.arange(names.shape[1] - width)
    tail = np.take_along_axis(names, np.minimum(src, names.shape[1] - 1), 1)
    tail[src >= names.shape[1]] = 0
    too_long = (names != 0).sum(1) - key_len + width > names.shape[1]
    if too_long.any():
        raise InputDataError(f"member name {member_name(heads[np.argmax(too_long)])!r} too long "
                             f"for a {width}-character key")
    heads[:, :width] = new_keys
    heads[:, width:names.shape[1]] = tail
    heads[:, CHKSUM] = ord(" ")
    heads[:, CHKSUM] = _checksum_field(heads.sum(1, dtype=np.int64))
    blocks[header_blocks] = heads


def renamed_checksums(chk_base: np.ndarray, new_keys: np.ndarray) -> np.ndarray:
    """Checksum fields, (m, 8) uint8, of member headers renamed to `new_keys` ((m, w) uint8, the
    width of their current keys), from their TarIndex.member_chk_base."""
    return _checksum_field(chk_base + new_keys.sum(1, dtype=np.int64))


@functools.lru_cache(maxsize=None)
def _patch_fields(width: int) -> np.dtype:
    return np.dtype({"names": ["key", "chksum"], "formats": [f"V{width}", "V8"],
                     "offsets": [0, CHKSUM.start], "itemsize": BLOCK})


def patch_members(buf: np.ndarray, header_blocks: np.ndarray, new_keys: np.ndarray,
                  new_chksums: np.ndarray, indexed_chksums: np.ndarray) -> None:
    """Rename the members at `header_blocks` of a tar image `buf` to keys of their current
    keys' width (img2dataset's 9 digits): overwrite the key and the checksum field, computed
    beforehand for a whole shard (renamed_checksums), so a copy batch costs a few array calls.
    `indexed_chksums`: the headers' TarIndex.member_chk_field; a header whose checksum field
    differs is not the one indexed, and its new checksum would be wrong."""
    _check_headers(buf, header_blocks)
    fields = buf.view(_patch_fields(new_keys.shape[1]))
    if not (fields["chksum"][header_blocks].view("<u8") == indexed_chksums).all():
        raise InputDataError(_STALE)
    fields["key"][header_blocks] = new_keys.view(f"V{new_keys.shape[1]}").ravel()
    fields["chksum"][header_blocks] = new_chksums.view("V8").ravel()


def _checksum_field(chk: np.ndarray) -> np.ndarray:
    """(m, 8) uint8: "%06o\\0 " as tarfile writes it."""
    out = np.empty((len(chk), 8), np.uint8)
    out[:, :6] = (chk[:, None] >> np.arange(15, -1, -3)) % 8 + ord("0")
    out[:, 6], out[:, 7] = 0, ord(" ")
    return out


def digit_keys(index: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal keys of `index` as (n, width) uint8 ASCII."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((index.astype(np.int64)[:, None] // powers) % 10 + ord("0")).astype(np.uint8)
