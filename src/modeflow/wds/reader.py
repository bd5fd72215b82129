"""Reading img2dataset webdataset shards: samples grouped by key, captions and uids without images.

Shards are streamed (tarfile mode "r|" over an fsspec file), so a local path and an s3:// url read
the same way and nothing needs seeking. Members nobody asked for are skipped, never decoded.
"""

from __future__ import annotations

import json
import tarfile
from typing import Iterator

import fsspec

from modeflow.common.errors import InputDataError
from modeflow.common.uids import is_valid_uid

# The members that hold a sample's image; a reader takes the first of these a sample has.
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")


class _TarInfo(tarfile.TarInfo):
    """Notes on the TarFile whether the archive ended with its end-of-archive (all-zero) block.

    In stream mode tarfile ends iteration silently on a missing, cut or garbage header after the
    first member, so a tar truncated between members would otherwise read as a shorter, valid one.
    """

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.modeflow_clean_end = True
            raise


def _split_name(name: str) -> tuple[str, str]:
    """`dir/000000012.jpg` -> ("dir/000000012", "jpg"): webdataset's rule, the key ends at the
    first dot of the file name."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower() if dot else ""


def iter_samples(tar_path: str, *, want=("json", "txt")) -> Iterator[dict]:
    """Yield one dict per sample key, in tar order: `{"__key__": key, ext: bytes, ...}` with only
    the extensions in `want` that the sample has. Other members are skipped unread."""
    want = frozenset(ext.lower() for ext in want)
    seen: set[str] = set()
    sample: dict | None = None
    member = None
    try:
        with fsspec.open(tar_path, "rb") as fh, \
                tarfile.open(fileobj=fh, mode="r|", tarinfo=_TarInfo) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split_name(member.name)
                if sample is None or key != sample["__key__"]:
                    if sample is not None:
                        yield sample
                    if key in seen:  # img2dataset writes a key's members consecutively
                        raise InputDataError(f"{tar_path}: duplicate sample key {key!r} (member {member.name})")
                    seen.add(key)
                    sample = {"__key__": key}
                if ext in want:
                    if ext in sample:
                        raise InputDataError(f"{tar_path}: duplicate member {member.name}")
                    sample[ext] = tar.extractfile(member).read()
            # (set by _TarInfo; may already be while opening, which reads the first header)
            if not getattr(tar, "modeflow_clean_end", False):
                raise tarfile.ReadError("no end-of-archive marker after the last member")
    except (tarfile.ReadError, EOFError) as exc:
        where = f" at or after member {member.name}" if member is not None else ""
        raise InputDataError(f"{tar_path}: truncated or corrupt tar{where}: {exc}") from None
    except FileNotFoundError:
        raise InputDataError(f"{tar_path}: shard not found") from None
    if sample is not None:
        yield sample


def count_samples(tar_path: str) -> int:
    return sum(1 for _ in iter_samples(tar_path, want=()))


def read_captions(tar_path: str) -> tuple[list[str], list[str]]:
    """(uids, captions) in tar order; see iter_captions."""
    uids: list[str] = []
    captions: list[str] = []
    for _key, uid, caption in iter_captions(tar_path):
        uids.append(uid)
        captions.append(caption)
    return uids, captions


def iter_captions(tar_path: str) -> Iterator[tuple[str, str, str]]:
    """(key, uid, caption) per sample in tar order. The caption is the .txt member, else the json's
    "caption"; the uid is the json's "uid" (32 hex chars, the contract every later stage joins on)."""
    for sample in iter_samples(tar_path, want=("json", "txt")):
        key = sample["__key__"]
        if "json" not in sample:
            raise InputDataError(f"{tar_path}: sample {key!r} has no .json member (needed for its uid)")
        try:
            meta = json.loads(sample["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputDataError(f"{tar_path}: {key}.json is not valid json: {exc}") from None
        uid = meta.get("uid") if isinstance(meta, dict) else None
        if not is_valid_uid(uid):
            raise InputDataError(f"{tar_path}: sample {key!r} has no valid uid in its json "
                                 f"(got {uid!r}; expected 32 lowercase hex chars)")
        if "txt" in sample:
            try:
                caption = sample["txt"].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputDataError(f"{tar_path}: {key}.txt is not valid UTF-8: {exc}") from None
        else:
            caption = meta.get("caption")
            if not isinstance(caption, str):
                raise InputDataError(f"{tar_path}: sample {key!r} has no caption (.txt or json 'caption')")
        yield key, uid, caption
