"""The results jsonl of one model's evaluation (DataComp's eval_results.jsonl shape, one line per
task, keyed by task name): what a rerun skips, and when an old work directory must be cleared.

The jsonl is rewritten whole under a temp name, so a kill never leaves half a line.
"""

from __future__ import annotations

import json
from pathlib import Path

from modeflow.common.atomic import atomic_path
from modeflow.common.errors import InputDataError
from modeflow.common.provenance import claim_work_dir, file_stamp
from modeflow.evaluate.outputs import scores_file


def read_results(results_jsonl: str | Path) -> list[dict]:
    path = Path(results_jsonl)
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputDataError(f"{path}:{n}: not a json line") from None
    return rows


def append_result(results_jsonl: Path, row: dict) -> None:
    """Add `row`, replacing an older row of the same key."""
    rows = [r for r in read_results(results_jsonl) if r.get("key") != row["key"]] + [row]
    with atomic_path(results_jsonl) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def task_done(out_dir: Path, kind: str, name: str, done_keys: set[str]) -> bool:
    """In the jsonl and its arrays still there (a task whose arrays are gone is evaluated again)."""
    return name in done_keys and (out_dir / name / scores_file(kind)).is_file()


def reset_if_stale(work_dir: str | Path, model_name: str, checkpoint: str | Path) -> bool:
    """Clear an evaluation work directory left by another checkpoint (its results.jsonl would make
    evaluate_model skip tasks); True if something was cleared."""
    return claim_work_dir(work_dir, {"model": model_name, "checkpoint": file_stamp(checkpoint)}, keep=0)
