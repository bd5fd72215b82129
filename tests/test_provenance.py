"""Work directories that survive failures are retired when their inputs change."""
from __future__ import annotations

import os

from modeflow.common.provenance import claim_work_dir, file_stamp


def test_same_inputs_keep_the_directory_other_inputs_retire_it(tmp_path):
    work = tmp_path / "run"
    assert claim_work_dir(work, {"lr": 1e-3}, keep=2) is False
    (work / "epoch_1.pt").write_bytes(b"weights")
    assert claim_work_dir(work, {"lr": 1e-3}, keep=2) is False
    assert (work / "epoch_1.pt").exists()  # resumable
    assert claim_work_dir(work, {"lr": 2e-3}, keep=2) is True
    assert not (work / "epoch_1.pt").exists()
    moved = list((tmp_path / "superseded").glob("run.*"))
    assert len(moved) == 1 and (moved[0] / "epoch_1.pt").read_bytes() == b"weights"  # kept, not lost


def test_clearing_mode_and_unmarked_directories(tmp_path):
    work = tmp_path / "eval"
    work.mkdir()
    (work / "results.jsonl").write_text("{}\n")  # no fingerprint: adopted as it is
    assert claim_work_dir(work, {"checkpoint": 1}, keep=0) is False
    assert (work / "results.jsonl").exists()
    assert claim_work_dir(work, {"checkpoint": 2}, keep=0) is True  # another checkpoint
    assert not (work / "results.jsonl").exists() and not (tmp_path / "superseded").exists()


def test_file_stamp_changes_when_a_checkpoint_is_rewritten(tmp_path):
    ckpt = tmp_path / "seed.pt"
    ckpt.write_bytes(b"a")
    first = file_stamp(ckpt)
    os.utime(ckpt, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    assert file_stamp(ckpt) != first and file_stamp(None) is None


def test_superseded_runs_are_kept_in_one_place_up_to_the_configured_number(tmp_path):
    """Each change of inputs used to leave another `<run>.superseded-<tag>` beside the runs."""
    work = tmp_path / "expert_00"
    for lr in (1, 2, 3, 4):
        claim_work_dir(work, {"lr": lr}, keep=2)
        (work / "epoch_1.pt").write_text(f"lr={lr}")
    kept = sorted((tmp_path / "superseded").iterdir())
    assert len(kept) == 2 and all(p.name.startswith("expert_00.") for p in kept)
    assert sorted((p / "epoch_1.pt").read_text() for p in kept) == ["lr=2", "lr=3"]  # the newest two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert_00", "superseded"]
