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


def fingerprint(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def retire_work_dir(work_dir: str | os.PathLike, tag: str, *, keep_old: bool, why: str) -> None:
    """Move `work_dir` aside to `<work_dir>.superseded-<tag>` (keep_old) or delete it."""
    work_dir = Path(work_dir)
    if keep_old:
        moved = work_dir.with_name(f"{work_dir.name}.superseded-{tag}")
        if moved.exists():
            shutil.rmtree(moved)
        work_dir.rename(moved)
        log.warning("%s %s; moved aside to %s", work_dir, why, moved)
    else:
        shutil.rmtree(work_dir)
        log.info("%s %s; cleared", work_dir, why)


def claim_work_dir(work_dir: str | os.PathLike, inputs, *, keep_old: bool) -> bool:
    """Make `work_dir` belong to `inputs`. If it was made from other inputs it is moved aside to
    `<work_dir>.superseded-<old fingerprint>` (keep_old: e.g. checkpoints worth days) or deleted
    (cheap derived files); returns whether an old directory was retired. A directory without a
    fingerprint (made by hand, or by a version before fingerprints) is adopted as it is."""
    work_dir = Path(work_dir)
    new = fingerprint(inputs)
    marker = work_dir / FINGERPRINT_FILE
    retired = False
    if marker.exists():
        old = json.loads(marker.read_text())["fingerprint"]
        if old == new:
            return False
        retire_work_dir(work_dir, old[:12], keep_old=keep_old, why="was made from other inputs")
        retired = True
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": new, "inputs": inputs})
    return retired
