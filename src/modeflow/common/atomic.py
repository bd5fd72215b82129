"""Atomic outputs: write under a temporary name in the target's directory, then rename.

A killed job leaves only `.tmp-*` files behind, never something a rerun would take for a finished
output; the next write of the same target removes them. Renames stay on one filesystem because the
temp file lives next to its target.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def remove_stale_temps(target: Path, suffix: str = "") -> list[Path]:
    """Delete what killed writes of `target` left: `.tmp-<name>.<8 random chars><suffix>`, exactly
    the names tempfile gives below (so `.tmp-a.json.*` of a sibling `a.json` is never taken for
    `a`'s). Safe because one target has one writer: Snakemake runs one job per output."""
    pattern = re.compile(rf"\.tmp-{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    stale = [p for p in target.parent.glob(f".tmp-{glob.escape(target.name)}.*") if pattern.fullmatch(p.name)]
    for path in stale:
        _remove(path)
    return stale


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to `target`; rename it onto `target` if the block succeeds.

    `suffix` lets writers that insist on an extension (np.save, pyarrow) keep it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    # mkstemp makes 0600 files; outputs on a shared cluster filesystem get the usual umask mode.
    os.chmod(tmp, 0o666 & ~_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        _remove(tmp_path)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory next to `target`; move it onto `target` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_text(obj) -> str:
    """How modeflow writes json files: indented, keys sorted."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(target: str | os.PathLike, obj) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json_text(obj))


def save_npy(target: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_parquet(target: str | os.PathLike, table) -> None:
    import pyarrow.parquet as pq

    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
