"""Which inputs produced a resumable work directory (a training run, an evaluation in progress).

Work directories outlive failed jobs so a rerun can resume; they must not outlive a change of
inputs (a retrained seed, another lr), or a rerun would "resume" stale results. Each directory
keeps the fingerprint of what made it; a different fingerprint retires it before work starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from modeflow.common.atomic import write_json

FINGERPRINT_FILE = "fingerprint.json"
log = logging.getLogger("modeflow")


def file_stamp(path: str | os.PathLike | None) -> dict | None:
    """Identity of a file without reading it: path, size, modification time (ns)."""
    if path is None:
        return None
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (manifests of checkpoints and exports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


SUPERSEDED_DIR = "superseded"


def _retired_copies(place: Path, name: str) -> list[Path]:
    """`name`'s retired copies in `place`, oldest first."""
    pattern = re.compile(rf"{re.escape(name)}\.(\d+)\.[^.]+")
    found = [(int(m[1]), p) for p in place.iterdir() if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def retire_work_dir(work_dir: str | os.PathLike, tag: str, *, keep: int, why: str) -> Path | None:
    """Retire `work_dir`: move it to `<parent>/superseded/<name>.<number>.<tag>` (numbered in
    order of retirement) and keep the newest `keep` retired copies of that name there (checkpoints
    worth days), or delete it when keep is 0 (cheap derived files). Returns where it went, or None
    when deleted."""
    work_dir = Path(work_dir)
    if keep <= 0:
        shutil.rmtree(work_dir)
        log.info("%s %s; cleared", work_dir, why)
        return None
    place = work_dir.parent / SUPERSEDED_DIR
    place.mkdir(exist_ok=True)
    retired = _retired_copies(place, work_dir.name)
    number = int(retired[-1].name.split(".")[-2]) + 1 if retired else 1
    moved = place / f"{work_dir.name}.{number:03d}.{tag}"
    work_dir.rename(moved)
    log.warning("%s %s; moved aside to %s", work_dir, why, moved)
    for old in _retired_copies(place, work_dir.name)[:-keep]:
        shutil.rmtree(old)
        log.info("removed %s: only the newest %d superseded copies are kept", old, keep)
    return moved


def claim_work_dir(work_dir: str | os.PathLike, inputs, *, keep: int) -> bool:
    """Make `work_dir` belong to `inputs`. If it was made from other inputs it is retired first
    (retire_work_dir: kept up to `keep` copies, or deleted); returns whether an old directory was
    retired. A directory without a fingerprint (made by hand, or by a version before
    fingerprints) is adopted as it is."""
    work_dir = Path(work_dir)
    new = fingerprint(inputs)
    marker = work_dir / FINGERPRINT_FILE
    retired = False
    if marker.exists():
        old = json.loads(marker.read_text())["fingerprint"]
        if old == new:
            return False
        retire_work_dir(work_dir, old[:12], keep=keep, why="was made from other inputs")
        retired = True
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": new, "inputs": inputs})
    return retired
