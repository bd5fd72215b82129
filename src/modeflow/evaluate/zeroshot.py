"""Zero-shot evaluation of one CLIP model on clip_benchmark wds tasks, saving what MoDE needs.

Per task, `out_dir/<task>/` gets the raw cosine similarities and their targets
(modeflow.evaluate.outputs) and task.json (what was evaluated). Each task's metrics are appended to
`results_jsonl` as soon as the task finishes (modeflow.evaluate.results); a rerun skips the tasks
found there whose arrays exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from modeflow.common.atomic import atomic_dir, write_json
from modeflow.common.device import resolve_device
from modeflow.common.errors import ConfigError
from modeflow.evaluate.features import class_text_features, encode_texts, image_features
from modeflow.evaluate.metrics import headline, metrics_from_logits, retrieval_metrics
from modeflow.evaluate.model import load_model
from modeflow.evaluate.outputs import save_task_outputs
from modeflow.evaluate.results import append_result, read_results, task_done
from modeflow.evaluate.tasks import Task, load_task


def _evaluate_task(model, preprocess, tokenizer, task: Task, task_out: Path, *, device: str,
                   batch_size: int) -> dict:
    feats, targets = image_features(model, preprocess, task, device=device, batch_size=batch_size)
    if task.kind == "classification":
        classes = class_text_features(model, tokenizer, task.classnames, task.templates, device=device)
        logits = (feats @ classes.T).astype(np.float32)
        labels = np.asarray(targets, dtype=np.int64)
        save_task_outputs(task_out, task.kind, logits, labels)
        return metrics_from_logits(logits, labels)
    captions = [c for caps in targets for c in caps]
    text_to_image = np.repeat(np.arange(len(targets)), [len(caps) for caps in targets]).astype(np.int64)
    similarity = (feats @ encode_texts(model, tokenizer, captions, device=device).T).astype(np.float32)
    save_task_outputs(task_out, task.kind, similarity, text_to_image)
    return retrieval_metrics(similarity, text_to_image)


def evaluate_model(model_name: str, checkpoint: str | Path | None, tasks: Sequence[str | Path],
                   out_dir: str | Path, *, device: str = "cpu", batch_size: int = 64,
                   results_jsonl: str | Path | None = None, label: str | None = None) -> list[dict]:
    """Evaluate one model on every task; returns the jsonl rows of all tasks (old and new).

    `results_jsonl` defaults to out_dir/results.jsonl; `label` names the model in it (default: the
    checkpoint's path). `checkpoint=None` evaluates untrained weights (tests, benchmarks)."""
    out_dir = Path(out_dir)
    results_jsonl = Path(results_jsonl) if results_jsonl else out_dir / "results.jsonl"
    loaded = [load_task(t) for t in tasks]
    names = [t.name for t in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"evaluate tasks: two task directories share a name ({names})")
    done = {r.get("key") for r in read_results(results_jsonl)}
    todo = [t for t in loaded if not task_done(out_dir, t.kind, t.name, done)]
    if todo:
        device = resolve_device(device, "evaluate.device")
        model, preprocess, tokenizer = load_model(model_name, checkpoint, device=device)
        for task in todo:
            with atomic_dir(out_dir / task.name) as tmp:
                metrics = _evaluate_task(model, preprocess, tokenizer, task, tmp, device=device,
                                         batch_size=batch_size)
                write_json(tmp / "task.json", {
                    "task": task.name, "kind": task.kind, "task_dir": str(task.path),
                    "model": model_name, "checkpoint": None if checkpoint is None else str(checkpoint),
                    "classnames": task.classnames, "metrics": metrics})
            append_result(results_jsonl, {
                "key": task.name, "dataset": task.name, "kind": task.kind, "model": label or
                (str(checkpoint) if checkpoint else model_name), "metrics": metrics,
                "headline": headline(task.kind, metrics, task.main_metric and task.main_metric.name)})
    keep = set(names)
    return [r for r in read_results(results_jsonl) if r.get("key") in keep]
