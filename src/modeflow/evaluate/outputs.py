"""The arrays evaluate_model saves per task, so the ensemble can combine models without running them.

`<eval_dir>/<task>/` holds raw cosine similarities (no logit scale, float32) and their targets:
    classification: logits.npy (N images x C classes), labels.npy (N,)
    retrieval:      similarity.npy (N images x T texts), text_to_image.npy (T,) image of each text
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modeflow.common.atomic import save_npy
from modeflow.common.errors import ModeflowError
from modeflow.evaluate.tasks import Task

ARRAYS = {"classification": ("logits", "labels"), "retrieval": ("similarity", "text_to_image")}  # (scores, target)


def scores_file(kind: str) -> str:
    """The file whose presence means a task's outputs were saved."""
    return f"{ARRAYS[kind][0]}.npy"


def save_task_outputs(task_out: Path, kind: str, scores: np.ndarray, target: np.ndarray) -> None:
    for name, value in zip(ARRAYS[kind], (scores, target)):
        save_npy(task_out / f"{name}.npy", value)


def read_task_outputs(eval_dir: str | Path, task: Task, model: str) -> dict[str, np.ndarray]:
    """The arrays evaluate_model saved for `task` in `eval_dir`; a missing one names model + file."""
    out = {}
    for name in ARRAYS[task.kind]:
        path = Path(eval_dir) / task.name / f"{name}.npy"
        if not path.is_file():
            raise ModeflowError(f"model {model!r}: {path} is missing (evaluate it on task {task.name!r} first)")
        out[name] = np.load(path)
    return out
