"""The routing step's saved weights, which the combining step reads instead of embedding any text.

    <dir>/weights.json                        {task: {kind, experts, arms, mode, mode_paper, ...}}
    <dir>/query_weights/<task>.<arm>.npy      retrieval only: per-caption weights (T, n), float64

weights.json is written last, so one on disk means its query weights are complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.atomic import save_npy, write_json
from modeflow.common.errors import InputDataError
from modeflow.ensemble.arms import entry_arms
from modeflow.evaluate.tasks import Task

WEIGHTS_JSON = "weights.json"
QUERY_WEIGHTS = "query_weights"


def query_weights_file(task_name: str, arm: str) -> str:
    """Where a retrieval task's per-caption weights go, relative to the weights directory."""
    return f"{QUERY_WEIGHTS}/{task_name}.{arm}.npy"


def write_task_weights(out_dir: str | Path, weights_json: Mapping[str, dict],
                       query_weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """query_weights: {task: {arm: (T, n)}} for the retrieval tasks, saved where their weights.json
    entry's `query_weights` says; then weights.json."""
    out_dir = Path(out_dir)
    for task, arms in query_weights.items():
        for arm, value in arms.items():
            # float64, as computed: the combining step then gives exactly the in-memory numbers
            save_npy(out_dir / weights_json[task]["query_weights"][arm], value)
    write_json(out_dir / WEIGHTS_JSON, weights_json)


def read_weights_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the ensemble weights {path}: {exc}") from None


def read_task_weights(weights_dir: str | Path, tasks: Sequence[Task],
                      experts: Sequence[str]) -> dict[str, dict]:
    """weights.json's entries for `tasks`, checked against the tasks and the cluster model's experts."""
    path = Path(weights_dir) / WEIGHTS_JSON
    saved = read_weights_json(path)
    entries = {}
    for task in tasks:
        entry = saved.get(task.name)
        if entry is None:
            raise InputDataError(f"{path} has no weights for task {task.name!r} (it has: "
                                 f"{', '.join(saved) or 'none'}); recompute them with compute_task_weights")
        if list(entry.get("experts", [])) != list(experts):
            raise InputDataError(f"{path}: task {task.name!r} was weighted for experts "
                                 f"{entry.get('experts')} but the cluster model has {list(experts)}; "
                                 f"recompute the weights with this cluster model")
        if entry.get("kind") != task.kind:
            raise InputDataError(f"{path}: task {task.name!r} is {task.kind} but its weights are for "
                                 f"a {entry.get('kind')} task")
        arms = entry_arms(entry)
        if "mode" not in arms or any(len(entry.get(arm, [])) != len(experts) for arm in arms):
            raise InputDataError(f"{path}: task {task.name!r} needs {len(experts)} weights per weighted arm "
                                 f"({', '.join(arms)}), `mode` among them")
        entries[task.name] = entry
    return entries


def arm_weights(entry: dict, weights_dir: str | Path, task: Task, outputs: Mapping[str, np.ndarray]) -> dict:
    """A task's saved weights per weighted arm, in the form combine.ensemble_arms takes, checked
    against one model's saved outputs (modeflow.evaluate.outputs) for that task."""
    weights_dir = Path(weights_dir)
    where = weights_dir / WEIGHTS_JSON
    if task.kind == "classification":
        num_classes = outputs["logits"].shape[1]
        if entry.get("num_classes") != num_classes:
            raise InputDataError(f"{where}: task {task.name!r} was weighted for {entry.get('num_classes')} "
                                 f"classes but the saved logits have {num_classes}")
        return {arm: np.asarray(entry[arm], dtype=np.float64) for arm in entry_arms(entry)}
    num_texts, num_experts = len(outputs["text_to_image"]), len(entry["experts"])
    weights = {}
    for arm in entry_arms(entry):
        path = weights_dir / entry.get("query_weights", {}).get(arm, query_weights_file(task.name, arm))
        if not path.is_file():
            raise InputDataError(f"{path} is missing (listed by {where} for task {task.name!r})")
        weights[arm] = np.load(path)
        if weights[arm].shape != (num_texts, num_experts):
            raise InputDataError(f"{path}: shape {weights[arm].shape}, but task {task.name!r} has "
                                 f"{num_texts} texts in the saved similarities and {num_experts} experts")
    return weights
