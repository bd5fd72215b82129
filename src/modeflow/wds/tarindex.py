"""Byte-level index of webdataset tars: where each sample's members start and end, and renaming
members in place.

Resharding copies samples as raw tar byte ranges (header + data + padding) instead of unpacking
and repacking members with `tarfile`, which is ~100x slower than copying the bytes. Headers are
found with numpy: a plain ustar tar is a chain of 512-byte headers, each followed by its data
padded to 512 bytes, so a candidate set of headers is right exactly when the chain links up.
Anything else (corruption, a "ustar" lookalike inside image data, truncation) falls back to a
sequential walk that either finds the true chain or names the member where the tar breaks.
Renaming a member to a key of the same width touches only the key and the checksum field; the
index keeps what the new checksum needs (TarIndex.member_chk_base).
"""

from __future__ import annotations

import functools
import mmap
import os
from dataclasses import dataclass

import numpy as np

from modeflow.common.errors import InputDataError

BLOCK = 512
_MAGIC = np.frombuffer(b"ustar", dtype=np.uint8)
_REGULAR = (ord("0"), 0)  # typeflags of plain files
_PAX = ord("x")  # per-member pax header: part of the member that follows it
_ALLOWED = (*_REGULAR, _PAX)  # GNU long names, global pax headers, links, dirs: unsupported
_NAME = slice(0, 100)
_SIZE = slice(124, 136)
_CHKSUM = slice(148, 156)
_PREFIX = slice(345, 500)
# The header fields read here, as a record over every 512-byte block: gathering one field of many
# headers copies just that field, several times faster than slicing rows of a (blocks, 512) array
_HEADER = np.dtype({"names": ["name", "size", "chksum", "typeflag", "magic", "prefix"],
                    "formats": ["V100", "V12", "V8", "u1", "V5", "u1"],
                    "offsets": [_NAME.start, _SIZE.start, _CHKSUM.start, 156, 257, _PREFIX.start],
                    "itemsize": BLOCK})
_PAX_START = np.dtype({"names": ["record"], "formats": ["V24"], "offsets": [0], "itemsize": BLOCK})  # pax data's first bytes


@dataclass
class TarIndex:
    """Members and samples of one tar. Offsets are in 512-byte blocks from the start of the tar.

    Members of a sample are consecutive (img2dataset/webdataset write them so), so a sample is the
    block range [sample_start, sample_end) and its member headers are at member_block.
    """

    path: str
    member_block: np.ndarray  # (m,) int64 header block of each member
    member_sample: np.ndarray  # (m,) int64 sample index of each member
    sample_keys: np.ndarray  # (s,) bytes dtype: webdataset key of each sample
    sample_key_len: np.ndarray  # (s,) int64
    sample_start: np.ndarray  # (s,) int64 first block
    sample_end: np.ndarray  # (s,) int64 one past the last block
    # (m,) int64 each member header's stored checksum less the bytes of its sample key: renaming
    # the member to key k makes its checksum this plus the bytes of k (see renamed_checksums)
    member_chk_base: np.ndarray
    # (m,) uint64 each member header's checksum field as stored (its 8 bytes, little-endian): a
    # header that differs from the indexed one shows here (patch_members checks it)
    member_chk_field: np.ndarray


def _octal(fields: np.ndarray) -> np.ndarray:
    """Numeric tar fields (rows of octal ASCII, NUL/space padded) -> int64, skipping padding."""
    digit = fields - np.uint8(ord("0"))  # uint8: bytes below "0" wrap round to > 7
    is_digit = digit <= 7
    width = int(np.argmin(is_digit.all(0))) if not is_digit.all() else fields.shape[1]
    if not is_digit[:, width:].any():
        # the usual layout ("%011o\0" as tarfile and GNU tar write it): the same leading columns
        # are digits in every row, so the value is one product with the powers of 8
        return digit[:, :width].astype(np.int64) @ (np.int64(8) ** np.arange(width - 1, -1, -1, dtype=np.int64))
    if len(fields) <= 1024:
        return _octal_few(fields)
    value = np.zeros(len(fields), dtype=np.int64)  # a pass per column: less memory for many rows
    for col in range(fields.shape[1]):
        digit = fields[:, col].astype(np.int64) - ord("0")
        ok = (digit >= 0) & (digit <= 7)
        value = np.where(ok, value * 8 + digit, value)
    return value


def _octal_few(fields: np.ndarray) -> np.ndarray:
    """_octal in a few whole-array operations: for the few headers of one copy batch, where the
    per-column passes cost ~3x more in call overhead. Each digit's power of 8 is the number of
    digits right of it."""
    digit = fields.astype(np.int64) - ord("0")
    ok = (digit >= 0) & (digit <= 7)
    digits_right = np.cumsum(ok[:, ::-1], axis=1)[:, ::-1] - ok
    return np.where(ok, digit << (3 * digits_right), 0).sum(1, dtype=np.int64)


def _data_blocks(size: np.ndarray) -> np.ndarray:
    return (size + BLOCK - 1) // BLOCK


def _field(headers: np.ndarray, at: np.ndarray, name: str) -> np.ndarray:
    """Field `name` of the headers at blocks `at`, as (len(at), width) uint8."""
    return headers[name][at].view(np.uint8).reshape(len(at), headers.dtype[name].itemsize)


def _fast_chain(blocks: np.ndarray, headers: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(header blocks, member sizes) if the "ustar"-magic candidates form one clean chain ending
    in a zero block."""
    heads = np.flatnonzero(blocks[:, 257] == _MAGIC[0])  # cheap first pass, then the full magic
    heads = heads[headers["magic"][heads].view("S5") == b"ustar"]
    if len(heads) == 0:
        return (heads, heads) if len(blocks) and not blocks[0].any() else None
    size = _octal(_field(headers, heads, "size"))
    nxt = heads + 1 + _data_blocks(size)
    if heads[0] != 0 or np.any(nxt[:-1] != heads[1:]):
        return None
    end = nxt[-1]
    if end >= len(blocks) or blocks[end].any():
        return None
    if not np.isin(headers["typeflag"][heads], _ALLOWED).all() or headers["prefix"][heads].any():
        return None  # the walk names the offending member
    return heads, size


def _member_name(block: np.ndarray) -> str:
    return bytes(block[_NAME]).split(b"\0", 1)[0].decode("utf-8", "replace")


def _walk_chain(path: str, blocks: np.ndarray, n_bytes: int) -> np.ndarray:
    """Sequential header walk that checks every checksum; raises naming where the tar breaks."""
    heads: list[int] = []
    pos = 0
    last = None
    while True:
        after = f" after member {last}" if last else ""
        if pos >= len(blocks):
            raise InputDataError(f"{path}: truncated tar, no end-of-archive marker{after}")
        block = blocks[pos]
        if not block.any():
            return np.asarray(heads, dtype=np.int64)
        stored = _octal(block[None, _CHKSUM])[0]
        actual = int(block.sum(dtype=np.int64)) - int(block[_CHKSUM].sum(dtype=np.int64)) + 8 * ord(" ")
        if stored != actual or bytes(block[257:262]) != b"ustar":
            raise InputDataError(f"{path}: corrupt tar header at byte {pos * BLOCK}{after}")
        name = _member_name(block)
        if block[156] not in _ALLOWED or block[_PREFIX].any():
            raise InputDataError(
                f"{path}: member {name} uses an unsupported tar feature (type {chr(block[156])!r} or "
                "ustar prefix); reshard copies plain members as img2dataset/webdataset write them")
        size = int(_octal(block[None, _SIZE])[0])
        if pos * BLOCK + BLOCK + size > n_bytes:
            raise InputDataError(f"{path}: truncated tar inside member {name}")
        heads.append(pos)
        last = name
        pos += 1 + int(_data_blocks(np.int64(size)))


_PAX_MOVES = (b"path", b"linkpath", b"size")  # pax keys that change a member's name or extent


def _pax_keys(data: bytes) -> list[bytes]:
    keys, pos = [], 0
    while pos < len(data) and data[pos]:
        space = data.index(b" ", pos)
        keys.append(data[space + 1:data.index(b"=", space)])
        pos += int(data[pos:space])
    return keys


def _single_safe_record(first: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rows of pax data (their first bytes) holding exactly one record whose key is not in
    _PAX_MOVES (vectorised; webdataset writes just "NN mtime=..."). A row it cannot clear is
    checked record by record by the caller."""
    is_space = first[:, :8] == ord(" ")
    space = np.where(is_space.any(1), np.argmax(is_space, 1), 0)
    ok = np.zeros(len(first), bool)
    for width in np.unique(space[space > 0]).tolist():  # the length field's width: one or two per tar
        rows = np.flatnonzero(space == width)
        digit = first[rows, :width] - np.uint8(ord("0"))
        length = digit.astype(np.int64) @ (np.int64(10) ** np.arange(width - 1, -1, -1, dtype=np.int64))
        good = (digit <= 9).all(1) & (length == size[rows])
        key = first[rows, width + 1:]
        for moves in _PAX_MOVES:
            pattern = np.frombuffer(moves + b"=", np.uint8)
            good &= ~(key[:, :len(pattern)] == pattern).all(1)
        ok[rows] = good
    return ok


def _check_pax(path: str, raw: bytes | mmap.mmap, headers: np.ndarray, heads: np.ndarray,
               is_pax: np.ndarray, size: np.ndarray) -> None:
    """Pax headers may only carry records that do not change where or under which name a member
    lies (webdataset writes one with the float mtime before every member)."""
    if not is_pax.any():
        return
    if is_pax[-1] or (is_pax[:-1] & is_pax[1:]).any():
        raise InputDataError(f"{path}: a pax header is not followed by a file member")
    where = np.flatnonzero(is_pax)
    pax, pax_size = heads[where], size[where]
    ok = pax_size <= BLOCK
    ok[ok] = _single_safe_record(_field(np.frombuffer(raw, _PAX_START, count=len(headers)), pax[ok] + 1, "record"),
                                 pax_size[ok])
    for i in np.flatnonzero(~ok).tolist():  # the rare general case, record by record
        start = (int(pax[i]) + 1) * BLOCK
        try:
            keys = _pax_keys(raw[start:start + int(pax_size[i])])
        except ValueError:
            keys = [b"<malformed>"]
        bad = [k.decode("utf-8", "replace") for k in keys if k in _PAX_MOVES or k == b"<malformed>"
               or k.startswith(b"GNU.sparse")]
        if bad:
            name = _member_name(_field(headers, heads[where[i] + 1:where[i] + 2], "name")[0])
            raise InputDataError(f"{path}: member {name} has pax record(s) {bad}; reshard copies "
                                 "plain members as img2dataset/webdataset write them")


def _key_lengths(names: np.ndarray) -> np.ndarray:
    """webdataset's key rule, vectorised: the key ends at the first dot of the file's base name."""
    cols = np.arange(names.shape[1])
    is_slash = names == ord("/")
    last_slash = np.where(is_slash.any(1), names.shape[1] - 1 - np.argmax(is_slash[:, ::-1], 1), -1)
    is_dot = (names == ord(".")) & (cols > last_slash[:, None])
    name_len = (names != 0).sum(1)
    return np.where(is_dot.any(1), np.argmax(is_dot, 1), name_len)


def index_tar(path: str) -> TarIndex:
    """Index a webdataset tar's members and samples without reading members one by one."""
    try:
        with open(path, "rb") as fh:
            # a read-only map, not a read: the header scan touches one cache line per block, and
            # nothing is copied (reading 100s of MB into bytes cost as much as the whole scan)
            raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
    except FileNotFoundError:
        raise InputDataError(f"{path}: shard not found") from None
    n_bytes = len(raw)
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_bytes // BLOCK * BLOCK).reshape(-1, BLOCK)
    headers = np.frombuffer(raw, dtype=_HEADER, count=len(blocks))
    found = _fast_chain(blocks, headers)
    if found is None:
        heads = _walk_chain(path, blocks, n_bytes)
        found = heads, _octal(_field(headers, heads, "size"))
    heads, size = found
    is_pax = headers["typeflag"][heads] == _PAX
    _check_pax(path, raw, headers, heads, is_pax, size)
    member_end = (heads + 1 + _data_blocks(size))[~is_pax]
    member_start = np.where(np.append(False, is_pax[:-1]), np.append(0, heads[:-1]), heads)[~is_pax]
    heads = heads[~is_pax]
    names = _field(headers, heads, "name")
    names = names[:, :max(1, int(np.flatnonzero(names.any(0)).max(initial=0)) + 1)]  # trim NUL tail
    key_len = _key_lengths(names)
    keyed = np.where(np.arange(names.shape[1]) < key_len[:, None], names, 0)
    new_sample = np.ones(len(heads), dtype=bool)
    new_sample[1:] = (keyed[1:] != keyed[:-1]).any(1)
    member_sample = np.cumsum(new_sample) - 1
    first = np.flatnonzero(new_sample)
    last = np.append(first[1:], len(heads)) - 1
    chk_field = _field(headers, heads, "chksum")
    chk_base = _octal(chk_field) - keyed.sum(1, dtype=np.int64)
    keys = np.ascontiguousarray(keyed[first]).view(f"S{names.shape[1]}").ravel()
    if not (keys[1:] > keys[:-1]).all() and len(np.unique(keys)) != len(keys):  # keys usually ascend
        uniq, counts = np.unique(keys, return_counts=True)
        dup = uniq[counts > 1][0].decode("utf-8", "replace")
        raise InputDataError(f"{path}: duplicate sample key {dup!r} (its members are not consecutive)")
    return TarIndex(path, heads.astype(np.int64), member_sample, keys, key_len[first].astype(np.int64),
                    member_start[first].astype(np.int64), member_end[last].astype(np.int64), chk_base,
                    chk_field.view("<u8").ravel())


_STALE = ("reshard index is stale: a recorded member header is not the one indexed any more "
          "(input tar changed after indexing; rerun reshard)")


def _check_headers(buf: np.ndarray, header_blocks: np.ndarray) -> None:
    if not (buf.view(_HEADER)["magic"][header_blocks].view("S5") == b"ustar").all():
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
    names = heads[:, _NAME]
    src = key_len[:, None] + np.arange(names.shape[1] - width)
    tail = np.take_along_axis(names, np.minimum(src, names.shape[1] - 1), 1)
    tail[src >= names.shape[1]] = 0
    too_long = (names != 0).sum(1) - key_len + width > names.shape[1]
    if too_long.any():
        raise InputDataError(f"member name {_member_name(heads[np.argmax(too_long)])!r} too long "
                             f"for a {width}-character key")
    heads[:, :width] = new_keys
    heads[:, width:names.shape[1]] = tail
    heads[:, _CHKSUM] = ord(" ")
    heads[:, _CHKSUM] = _checksum_field(heads.sum(1, dtype=np.int64))
    blocks[header_blocks] = heads


def renamed_checksums(chk_base: np.ndarray, new_keys: np.ndarray) -> np.ndarray:
    """Checksum fields, (m, 8) uint8, of member headers renamed to `new_keys` ((m, w) uint8, the
    width of their current keys), from their TarIndex.member_chk_base."""
    return _checksum_field(chk_base + new_keys.sum(1, dtype=np.int64))


@functools.lru_cache(maxsize=None)
def _patch_fields(width: int) -> np.dtype:
    return np.dtype({"names": ["key", "chksum"], "formats": [f"V{width}", "V8"],
                     "offsets": [0, _CHKSUM.start], "itemsize": BLOCK})


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
