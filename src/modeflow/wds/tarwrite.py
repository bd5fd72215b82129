"""Whole shard tars written by modeflow: a downloaded shard with its members in name order, and an
empty shard."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from modeflow.common.atomic import atomic_path
from modeflow.wds.tarformat import BLOCK, END_OF_ARCHIVE
from modeflow.wds.tarindex import member_extents


def write_sorted_tar(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a shard's tar with its members in name order, so its samples are in key order.

    img2dataset writes samples as its download threads finish: the same rows would give a
    differently ordered tar on every run, and so differently ordered embeddings downstream.
    Each member's bytes (headers included) are copied as they are, without re-encoding: this pass
    costs a small fraction of the download. A sample's members stay together because keys have a
    fixed width and end at the first dot.
    """
    start, end, names = member_extents(str(src))
    order = np.argsort(names, kind="stable")  # members of the same name keep their order
    with open(src, "rb") as fin, atomic_path(dst, suffix=".tar") as tmp, open(tmp, "wb") as fout:
        for begin, stop in zip((start[order] * BLOCK).tolist(), (end[order] * BLOCK).tolist()):
            fout.write(os.pread(fin.fileno(), stop - begin, begin))
        fout.write(END_OF_ARCHIVE)


def write_empty_tar(dst: str | os.PathLike) -> None:
    """A tar of no members, as tarfile writes it."""
    with atomic_path(Path(dst), suffix=".tar") as tmp:
        tarfile.open(tmp, "w").close()
