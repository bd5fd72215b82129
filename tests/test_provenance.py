"""Work directories that survive failures are retired when their inputs change."""
from __future__ import annotations

import os

from modeflow.common.provenance import claim_work_dir, file_stamp


def test_same_inputs_keep_the_directory_other_inputs_retire_it(tmp_path):
    work = tmp_path / "run"
    assert claim_work_dir(work, {"lr": 1e-3}, keep_old=True) is False
    (work / "epoch_1.pt").write_bytes(b"weights")
    assert claim_work_dir(work, {"lr": 1e-3}, keep_old=True) is False
    assert (work / "epoch_1.pt").exists()  # resumable
    assert claim_work_dir(work, {"lr": 2e-3}, keep_old=True) is True
    assert not (work / "epoch_1.pt").exists()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.superseded-")]
    assert len(moved) == 1 and (moved[0] / "epoch_1.pt").read_bytes() == b"weights"  # kept, not lost


def test_clearing_mode_and_unmarked_directories(tmp_path):
    work = tmp_path / "eval"
    work.mkdir()
    (work / "results.jsonl").write_text("{}\n")  # no fingerprint: adopted as it is
    assert claim_work_dir(work, {"checkpoint": 1}, keep_old=False) is False
    assert (work / "results.jsonl").exists()
    assert claim_work_dir(work, {"checkpoint": 2}, keep_old=False) is True  # another checkpoint
    assert not (work / "results.jsonl").exists() and not list(tmp_path.glob("eval.superseded-*"))


def test_file_stamp_changes_when_a_checkpoint_is_rewritten(tmp_path):
    ckpt = tmp_path / "seed.pt"
    ckpt.write_bytes(b"a")
    first = file_stamp(ckpt)
    os.utime(ckpt, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    assert file_stamp(ckpt) != first and file_stamp(None) is None
