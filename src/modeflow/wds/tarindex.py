"""Byte-level index of webdataset tars: where each member and each sample starts and ends.

Resharding copies samples as raw tar byte ranges (header + data + padding) instead of unpacking
and repacking members with `tarfile`, which is ~100x slower than copying the bytes; the download
puts a shard's members in name order the same way (modeflow.wds.tarwrite). Headers are found with
numpy: a plain ustar tar is a chain of 512-byte headers, each followed by its data padded to 512
bytes, so a candidate set of headers is right exactly when the chain links up. Anything else
(corruption, a "ustar" lookalike inside image data, truncation) falls back to a sequential walk
that either finds the true chain or names the member where the tar breaks. The index keeps what
renaming a member in place needs (TarIndex.member_chk_base, see modeflow.wds.tarrename).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.wds.tarformat import (BLOCK, CHKSUM, DIRECTORY, FILE_TYPES, HEADER, LONG_NAME, MAGIC, PAX, PREFIX,
                                    SIZE, member_name)

_PAX_START = np.dtype({"names": ["record"], "formats": ["V24"], "offsets": [0], "itemsize": BLOCK})  # pax data's first bytes
_PAX_MOVES = (b"path", b"linkpath", b"size")  # pax keys that change a member's name or extent
# what reshard copies and renames in place: GNU long names, global pax headers, links, dirs are not
_RESHARD_TYPES = (*FILE_TYPES, PAX)
_RESHARD_HINT = "reshard copies plain members as img2dataset/webdataset write them"


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
    # the member to key k makes its checksum this plus the bytes of k (tarrename.renamed_checksums)
    member_chk_base: np.ndarray
    # (m,) uint64 each member header's checksum field as stored (its 8 bytes, little-endian): a
    # header that differs from the indexed one shows here (tarrename.patch_members checks it)
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


def _map(path: str) -> bytes | mmap.mmap:
    """The tar's bytes as a read-only map, not a read: the header scan touches one cache line per
    block, and nothing is copied (reading 100s of MB into bytes cost as much as the whole scan)."""
    try:
        with open(path, "rb") as fh:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
    except FileNotFoundError:
        raise InputDataError(f"{path}: shard not found") from None


def _fast_chain(blocks: np.ndarray, headers: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(header blocks, data sizes) if the "ustar"-magic candidates form one clean chain ending
    in a zero block."""
    heads = np.flatnonzero(blocks[:, MAGIC.start] == ord("u"))  # cheap first pass, then the full magic
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
    return heads, size


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
        stored = _octal(block[None, CHKSUM])[0]
        actual = int(block.sum(dtype=np.int64)) - int(block[CHKSUM].sum(dtype=np.int64)) + 8 * ord(" ")
        if stored != actual or bytes(block[MAGIC]) != b"ustar":
            raise InputDataError(f"{path}: corrupt tar header at byte {pos * BLOCK}{after}")
        name = member_name(block)
        size = int(_octal(block[None, SIZE])[0])
        if pos * BLOCK + BLOCK + size > n_bytes:
            raise InputDataError(f"{path}: truncated tar inside member {name}")
        heads.append(pos)
        last = name
        pos += 1 + int(_data_blocks(np.int64(size)))


def _chain(path: str, raw: bytes | mmap.mmap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(every block as a header record, the header blocks of the tar's chain, their data sizes)."""
    n_bytes = len(raw)
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_bytes // BLOCK * BLOCK).reshape(-1, BLOCK)
    headers = np.frombuffer(raw, dtype=HEADER, count=len(blocks))
    found = _fast_chain(blocks, headers)
    if found is None:
        heads = _walk_chain(path, blocks, n_bytes)
        found = heads, _octal(_field(headers, heads, "size"))
    return headers, *found


def _check_types(path: str, headers: np.ndarray, heads: np.ndarray, allowed: tuple, *, prefix: bool,
                 hint: str) -> None:
    """Raise naming the first header whose typeflag is not `allowed`, or that has a ustar name
    prefix unless `prefix`."""
    bad = ~np.isin(headers["typeflag"][heads], allowed)
    if not prefix:
        bad |= headers["prefix"][heads] != 0
    if bad.any():
        at = heads[int(np.argmax(bad)):][:1]
        raise InputDataError(f"{path}: member {member_name(_field(headers, at, 'name')[0])} uses an unsupported "
                             f"tar feature (type {chr(int(headers['typeflag'][at[0]]))!r} or ustar prefix); {hint}")


def _members(path: str, headers: np.ndarray, heads: np.ndarray,
             size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(header block, first block, end block) of each member, and which headers of the chain are
    extension headers: a member's pax or GNU long-name header (at most one) is part of it."""
    is_ext = np.isin(headers["typeflag"][heads], (PAX, LONG_NAME))
    if is_ext.any() and (is_ext[-1] or (is_ext[:-1] & is_ext[1:]).any()):
        raise InputDataError(f"{path}: a pax or GNU long-name header is not followed by a file member")
    after_ext = np.zeros(len(heads), bool)
    after_ext[1:] = is_ext[:-1]
    start = heads.copy()
    start[after_ext] = heads[np.flatnonzero(after_ext) - 1]
    end = heads + 1 + _data_blocks(size)
    return heads[~is_ext], start[~is_ext], end[~is_ext], is_ext


def _data(raw: bytes | mmap.mmap, head: int, size: int) -> bytes:
    """The data of the member whose header is at block `head`."""
    return raw[(head + 1) * BLOCK:(head + 1) * BLOCK + size]


def _pax_records(data: bytes) -> list[tuple[bytes, bytes]]:
    """(key, value) of each "<length> <key>=<value>\\n" record of a pax header's data; ValueError
    if they are malformed."""
    records, pos = [], 0
    while pos < len(data) and data[pos]:
        space = data.index(b" ", pos)
        end = pos + int(data[pos:space])
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if end <= space or not eq:
            raise ValueError(f"malformed pax record at byte {pos}")
        records.append((key, value))
        pos = end
    return records


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


def _still_in_place(raw: bytes | mmap.mmap, headers: np.ndarray, pax: np.ndarray, pax_size: np.ndarray) -> np.ndarray:
    """Which of the pax headers at blocks `pax` surely change neither the name nor the extent of
    their member (the rest need reading record by record)."""
    ok = pax_size <= BLOCK
    ok[ok] = _single_safe_record(_field(np.frombuffer(raw, _PAX_START, count=len(headers)), pax[ok] + 1, "record"),
                                 pax_size[ok])
    return ok


def _check_pax(path: str, raw: bytes | mmap.mmap, headers: np.ndarray, heads: np.ndarray,
               is_pax: np.ndarray, size: np.ndarray) -> None:
    """Pax headers may only carry records that do not change where or under which name a member
    lies (webdataset writes one with the float mtime before every member)."""
    if not is_pax.any():
        return
    where = np.flatnonzero(is_pax)
    pax, pax_size = heads[where], size[where]
    for i in np.flatnonzero(~_still_in_place(raw, headers, pax, pax_size)).tolist():  # the rare general case
        try:
            keys = [k for k, _ in _pax_records(_data(raw, int(pax[i]), int(pax_size[i])))]
        except ValueError:
            keys = [b"<malformed>"]
        bad = [k.decode("utf-8", "replace") for k in keys if k in _PAX_MOVES or k == b"<malformed>"
               or k.startswith(b"GNU.sparse")]
        if bad:
            name = member_name(_field(headers, heads[where[i] + 1:where[i] + 2], "name")[0])
            raise InputDataError(f"{path}: member {name} has pax record(s) {bad}; {_RESHARD_HINT}")


def _key_lengths(names: np.ndarray) -> np.ndarray:
    """webdataset's key rule, vectorised: the key ends at the first dot of the file's base name."""
    cols = np.arange(names.shape[1])
    is_slash = names == ord("/")
    last_slash = np.where(is_slash.any(1), names.shape[1] - 1 - np.argmax(is_slash[:, ::-1], 1), -1)
    is_dot = (names == ord(".")) & (cols > last_slash[:, None])
    name_len = (names != 0).sum(1)
    return np.where(is_dot.any(1), np.argmax(is_dot, 1), name_len)


def index_tar(path: str) -> TarIndex:
    """Index a webdataset tar's members and samples without reading members one by one. A tar
    without members (img2dataset's shard when every download failed) has an empty index."""
    raw = _map(path)
    headers, chain, size = _chain(path, raw)
    _check_types(path, headers, chain, _RESHARD_TYPES, prefix=False, hint=_RESHARD_HINT)
    heads, member_start, member_end, is_pax = _members(path, headers, chain, size)
    _check_pax(path, raw, headers, chain, is_pax, size)
    names = _field(headers, heads, "name")
    names = names[:, :max(1, int(np.flatnonzero(names.any(0)).max(initial=0)) + 1)]  # trim NUL tail
    key_len = _key_lengths(names)
    keyed = np.where(np.arange(names.shape[1]) < key_len[:, None], names, 0)
    new_sample = np.ones(len(heads), dtype=bool)
    new_sample[1:] = (keyed[1:] != keyed[:-1]).any(1)
    member_sample = np.cumsum(new_sample) - 1
    first = np.flatnonzero(new_sample)
    last = np.append(first[1:], len(heads))[:len(first)] - 1
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


def member_extents(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first block, end block, name) of each member in tar order, its pax or GNU long-name header
    included; names as tarfile reads them (bytes): a GNU long name or a pax path record replaces
    the name field, else a ustar prefix goes before it. Files and directories only."""
    raw = _map(path)
    headers, chain, size = _chain(path, raw)
    _check_types(path, headers, chain, (*FILE_TYPES, DIRECTORY, PAX, LONG_NAME), prefix=True,
                 hint="tars of files and directories only")
    heads, start, end, is_ext = _members(path, headers, chain, size)
    names = np.ascontiguousarray(_field(headers, heads, "name")).view("S100").ravel().tolist()
    for i in np.flatnonzero(headers["prefix"][heads] != 0).tolist():
        at = int(heads[i]) * BLOCK
        names[i] = raw[at + PREFIX.start:at + PREFIX.stop].rstrip(b"\0") + b"/" + names[i]
    member_of = np.cumsum(~is_ext)  # at an extension header: the index of the member it is part of
    typeflag = headers["typeflag"][chain]
    for j in np.flatnonzero(is_ext & (typeflag == LONG_NAME)).tolist():
        long_name = _data(raw, int(chain[j]), int(size[j])).rstrip(b"\0")
        if long_name:
            names[member_of[j]] = long_name
    pax = np.flatnonzero(is_ext & (typeflag == PAX))
    for j in pax[~_still_in_place(raw, headers, chain[pax], size[pax])].tolist():
        try:
            records = _pax_records(_data(raw, int(chain[j]), int(size[j])))
        except ValueError as exc:
            raise InputDataError(f"{path}: pax header at byte {int(chain[j]) * BLOCK}: {exc}") from None
        named = next((value for key, value in records if key == b"path"), None)
        if named:
            names[member_of[j]] = named
    return start.astype(np.int64), end.astype(np.int64), np.array(names, dtype=bytes)
