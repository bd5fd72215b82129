"""Zero-shot evaluation of one CLIP model on clip_benchmark wds tasks, saving what MoDE needs.

Per task, `out_dir/<task>/` holds the raw cosine similarities (no logit scale, float32) so the
ensemble step can combine models without running them again:
    classification: logits.npy (N images x C classes), labels.npy (N,)
    retrieval:      similarity.npy (N images x T texts), text_to_image.npy (T,) image of each text
and task.json (what was evaluated). Each task's metrics are appended to `results_jsonl` as soon as
the task finishes (DataComp's eval_results.jsonl shape); a rerun skips the tasks found there whose
arrays exist. The jsonl is rewritten whole under a temp name, so a kill never leaves half a line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from modeflow.common.atomic import atomic_dir, atomic_path, save_npy, write_json
from modeflow.train.checkpoints import load_clip
from modeflow.common.errors import ConfigError, InputDataError, ModeflowError
from modeflow.train.architectures import register_model_configs
from modeflow.common.provenance import claim_work_dir, file_stamp
from modeflow.evaluate.tasks import Task, fill_template, iter_task_samples, load_task

RECALL_KS = (1, 5, 10)
OUTPUT_FILE = {"classification": "logits.npy", "retrieval": "similarity.npy"}
TEXT_BATCH = 256


# --- loading ----------------------------------------------------------------------------------


def load_model(model_name: str, checkpoint: str | Path | None, device: str = "cpu"):
    """(model, preprocess, tokenizer): modeflow.train.checkpoints.load_clip, or untrained weights for
    checkpoint=None (tests and benchmarks)."""
    if checkpoint is not None:
        return load_clip(model_name, checkpoint, device=device)
    import open_clip

    register_model_configs()
    if open_clip.get_model_config(model_name) is None:
        raise ConfigError(f"unknown open_clip architecture {model_name!r}")
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"evaluate.device: {device!r} asked for but no CUDA device is available")
    return device


# --- features ---------------------------------------------------------------------------------


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def encode_texts(model, tokenizer, texts: Sequence[str], *, device: str = "cpu",
                 batch_size: int = TEXT_BATCH) -> np.ndarray:
    """L2-normalised text features, float32 (len(texts), D)."""
    import torch

    out = []
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[lo:lo + batch_size])).to(device)
            out.append(model.encode_text(tokens).float().cpu().numpy())
    return _normalize(np.concatenate(out).astype(np.float32))


def class_text_features(model, tokenizer, classnames: Sequence[str], templates: Sequence[str], *,
                        device: str = "cpu") -> np.ndarray:
    """clip_benchmark's zero-shot classifier: per class, fill every template, encode, normalise,
    average, renormalise. Returns float32 (C, D) with unit rows."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    per_text = encode_texts(model, tokenizer, texts, device=device)
    per_class = per_text.reshape(len(classnames), len(templates), -1).mean(axis=1)
    return _normalize(per_class).astype(np.float32)


def _image_batches(task: Task, preprocess, batch_size: int) -> Iterable[tuple[list, list]]:
    images, targets = [], []
    for sample in iter_task_samples(task, preprocess):
        images.append(sample.image)
        targets.append(sample.target)
        if len(images) == batch_size:
            yield images, targets
            images, targets = [], []
    if images:
        yield images, targets


def image_features(model, preprocess, task: Task, *, device: str = "cpu", batch_size: int = 64,
                   progress: bool = True) -> tuple[np.ndarray, list]:
    """L2-normalised image features (N, D) and the samples' targets, in shard order."""
    import torch
    from tqdm import tqdm

    feats, targets = [], []
    with torch.inference_mode(), tqdm(desc=f"eval {task.name}", unit="img", disable=not progress,
                                      file=sys.stderr) as bar:
        for images, batch_targets in _image_batches(task, preprocess, batch_size):
            feats.append(model.encode_image(torch.stack(images).to(device)).float().cpu().numpy())
            targets.extend(batch_targets)
            bar.update(len(images))
    if not feats:
        raise InputDataError(f"task {task.path}: its shards hold no samples")
    return _normalize(np.concatenate(feats).astype(np.float32)), targets


# --- metrics (pure) ---------------------------------------------------------------------------


def metrics_from_logits(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 accuracy and mean per-class recall (over the classes present in `labels`)."""
    logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} do not match")
    correct = logits.argmax(axis=1) == labels
    classes = np.unique(labels)
    recalls = [correct[labels == c].mean() for c in classes]
    return {"top1": float(correct.mean()), "mean_per_class_recall": float(np.mean(recalls)),
            "num_samples": int(len(labels))}


def _ranks(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of column positive[r] in each row r of scores; ties go to the lower index,
    as a stable descending sort would order them."""
    rows = np.arange(len(scores))
    target = scores[rows, positive][:, None]
    cols = np.arange(scores.shape[1])[None, :]
    ahead = (scores > target) | ((scores == target) & (cols < positive[:, None]))
    return ahead.sum(axis=1)


def retrieval_metrics(similarity: np.ndarray, text_to_image: np.ndarray,
                      ks: Sequence[int] = RECALL_KS, chunk: int = 1024) -> dict:
    """clip_benchmark's recalls on an images x texts similarity; text j describes image
    text_to_image[j]. `image_retrieval_recall@k`: text -> image (is the text's image in its top k);
    `text_retrieval_recall@k`: image -> text (is any of the image's texts in its top k), over the
    images that have a text. `mean_recall@1` = ½(text R@1 + image R@1) (DataComp)."""
    sim = np.asarray(similarity)
    t2i = np.asarray(text_to_image).astype(np.int64)
    n_img, n_txt = sim.shape
    if t2i.shape != (n_txt,) or not n_txt or t2i.min() < 0 or t2i.max() >= n_img:
        raise ValueError(f"text_to_image {t2i.shape} does not map {n_txt} texts to {n_img} images")
    text_rank = np.empty(n_txt, np.int64)  # rank of each text's image among all images
    image_rank = np.full(n_img, np.iinfo(np.int64).max)  # best rank of an image's texts
    for lo in range(0, n_txt, chunk):  # chunks: bounded memory on big sets
        j = np.arange(lo, min(lo + chunk, n_txt))
        text_rank[j] = _ranks(np.ascontiguousarray(sim[:, j].T), t2i[j])
        np.minimum.at(image_rank, t2i[j], _ranks(sim[t2i[j]], j))
    has_text = image_rank < np.iinfo(np.int64).max
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float((text_rank < k).mean())
        out[f"text_retrieval_recall@{k}"] = float((image_rank[has_text] < k).mean())
    out["mean_recall@1"] = 0.5 * (out["image_retrieval_recall@1"] + out["text_retrieval_recall@1"])
    out["num_images"], out["num_texts"] = int(n_img), int(n_txt)
    return out


def headline(kind: str, metrics: dict) -> float:
    """The number a summary shows per task: top-1 (classification), mean_recall@1 (retrieval)."""
    return float(metrics["top1"] if kind == "classification" else metrics["mean_recall@1"])


# --- results jsonl ----------------------------------------------------------------------------


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


def _append_result(results_jsonl: Path, row: dict) -> None:
    rows = [r for r in read_results(results_jsonl) if r.get("key") != row["key"]] + [row]
    with atomic_path(results_jsonl) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def task_done(out_dir: Path, kind: str, name: str, done_keys: set[str]) -> bool:
    return name in done_keys and (out_dir / name / OUTPUT_FILE[kind]).is_file()


# --- one model on all tasks -------------------------------------------------------------------


def _evaluate_task(model, preprocess, tokenizer, task: Task, task_out: Path, *, device: str,
                   batch_size: int) -> dict:
    feats, targets = image_features(model, preprocess, task, device=device, batch_size=batch_size)
    if task.kind == "classification":
        classes = class_text_features(model, tokenizer, task.classnames, task.templates, device=device)
        logits = (feats @ classes.T).astype(np.float32)
        labels = np.asarray(targets, dtype=np.int64)
        save_npy(task_out / "logits.npy", logits)
        save_npy(task_out / "labels.npy", labels)
        return metrics_from_logits(logits, labels)
    captions = [c for caps in targets for c in caps]
    text_to_image = np.repeat(np.arange(len(targets)), [len(caps) for caps in targets]).astype(np.int64)
    similarity = (feats @ encode_texts(model, tokenizer, captions, device=device).T).astype(np.float32)
    save_npy(task_out / "similarity.npy", similarity)
    save_npy(task_out / "text_to_image.npy", text_to_image)
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
        device = resolve_device(device)
        model, preprocess, tokenizer = load_model(model_name, checkpoint, device=device)
        for task in todo:
            with atomic_dir(out_dir / task.name) as tmp:
                metrics = _evaluate_task(model, preprocess, tokenizer, task, tmp, device=device,
                                         batch_size=batch_size)
                write_json(tmp / "task.json", {
                    "task": task.name, "kind": task.kind, "task_dir": str(task.path),
                    "model": model_name, "checkpoint": None if checkpoint is None else str(checkpoint),
                    "classnames": task.classnames, "metrics": metrics})
            _append_result(results_jsonl, {
                "key": task.name, "dataset": task.name, "kind": task.kind, "model": label or
                (str(checkpoint) if checkpoint else model_name), "metrics": metrics,
                "headline": headline(task.kind, metrics)})
    keep = set(names)
    return [r for r in read_results(results_jsonl) if r.get("key") in keep]


def read_task_outputs(eval_dir: str | Path, task: Task, model: str) -> dict[str, np.ndarray]:
    """The arrays evaluate_model saved for `task` in `eval_dir`; a missing one names model + file."""
    files = (("logits", "labels") if task.kind == "classification" else ("similarity", "text_to_image"))
    out = {}
    for name in files:
        path = Path(eval_dir) / task.name / f"{name}.npy"
        if not path.is_file():
            raise ModeflowError(f"model {model!r}: {path} is missing (evaluate it on task {task.name!r} first)")
        out[name] = np.load(path)
    return out


def reset_if_stale(work_dir: str | Path, model_name: str, checkpoint: str | Path) -> bool:
    """Clear an evaluation work directory left by another checkpoint (its results.jsonl would make
    evaluate_model skip tasks); True if something was cleared."""
    return claim_work_dir(work_dir, {"model": model_name, "checkpoint": file_stamp(checkpoint)}, keep_old=False)
