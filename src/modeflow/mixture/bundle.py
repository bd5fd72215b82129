"""A DataComp-style submission bundle of a finished run, gathered into one directory, nothing
uploaded: what DataComp's leaderboard asks for (the subset files the models trained on, the
checkpoints, per-task results in DataComp's `eval_results.jsonl` format, the number of samples and
the training cost) plus what running the mixture needs (cluster model, routing data) and the config.

    <out>/manifest.json          every other file of the bundle: path, bytes, sha256
    <out>/submission.json        submitted arm, experts, dataset sizes, training cost, average score
    <out>/results.jsonl          the submitted arm per task: {"key", "dataset", "metrics": {..., "main_metric"}}
    <out>/arms.jsonl             every arm's metrics as the ensemble stage wrote them
    <out>/costs.json             per arm: samples seen, FLOPs, wall seconds (seed included)
    <out>/samples/<subset>.npy   DataComp subset files (sorted u8,u8 uids), with their stats .json;
                                 samples/grow_<name>.npy: the data of each expert added later (grow.experts)
    <out>/checkpoints/<model>.pt, <model>.json   open_clip_train checkpoints and their run meta
    <out>/cluster/, routing/     the cluster model and the routing step's output
    <out>/config/<name>          the run's config file as given

The output directory is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from modeflow.cluster.model import load_cluster_model
from modeflow.common.atomic import atomic_dir, json_text
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.provenance import file_sha256
from modeflow.config.files import read_config_file
from modeflow.config.references import seed_subset
from modeflow.config.schema import validate_config
from modeflow.ensemble.costs import arm_costs, load_metas
from modeflow.evaluate.results import read_results
from modeflow.evaluate.tasks import Task
from modeflow.mixture.files import ResultsLayout, require_cluster_model, require_finished_ensemble
from modeflow.mixture.saved import saved_arm_scores

MANIFEST = "manifest.json"
SUBMITTED_ARM = "mode"  # MoDE, with the routing formula the config's ensemble.weights chooses
ACC5_MIN_CLASSES = 5  # DataComp reports acc5 only for tasks with at least 5 classes (else None)


def _copy(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise InputDataError(f"bundle: {src} is missing")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write(dst: Path, text: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)


def _acc5(scores: np.ndarray, labels: np.ndarray) -> float | None:
    if scores.shape[1] < ACC5_MIN_CLASSES:
        return None
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    return float((top5 == labels[:, None]).any(axis=1).mean())


def datacomp_results(layout: ResultsLayout, rows: list[dict], arm: str, num_experts: int) -> list[dict]:
    """The arm's rows of arms.jsonl in DataComp's eval_results.jsonl form: classification as acc1,
    acc5 (rebuilt from the saved outputs) and mean_per_class_recall, retrieval with
    clip_benchmark's recall keys; main_metric = modeflow's headline, the task's main metric
    (modeflow.evaluate.main_metric: DataComp's for its tasks)."""
    out = []
    for row in (r for r in rows if r["arm"] == arm):
        metrics = dict(row["metrics"])
        if row["kind"] == "classification":
            task = Task(row["task"], row["kind"], [], [], [], layout.root)
            scores, labels = saved_arm_scores(layout, task, arm, num_experts)
            acc1 = float((scores.argmax(axis=1) == labels).mean())
            if abs(acc1 - metrics["top1"]) > 1e-9:
                raise InputDataError(f"bundle: arm {arm!r} on task {row['task']!r}: the saved outputs give "
                                     f"top-1 {acc1} but {layout.arms_jsonl} says {metrics['top1']}; "
                                     "rerun the ensemble stage")
            metrics = {"acc1": metrics.pop("top1"), "acc5": _acc5(scores, labels), **metrics}
        metrics["main_metric"] = row["headline"]
        out.append({"key": row["task"], "dataset": row["task"], "metrics": metrics})
    if not out:
        raise InputDataError(f"bundle: {layout.arms_jsonl} has no rows of arm {arm!r}")
    return out


def _subset_size(path: Path) -> int:
    return int(len(np.load(path, mmap_mode="r")))


def make_bundle(results_dir: str | Path, out_dir: str | Path, config: str | Path, *,
                arm: str | None = None) -> dict:
    """Gather the bundle of a finished run (see module doc) into out_dir, which must not exist;
    returns the manifest. config: the config file the run used. arm: the one submitted (default
    `mode`; any arm modeflow.mixture.saved can rebuild)."""
    layout, out_dir = ResultsLayout(Path(results_dir)), Path(out_dir)
    if out_dir.exists():
        raise InputDataError(f"bundle: {out_dir} already exists; remove it or choose another directory")
    cfg = validate_config(read_config_file(config))
    require_cluster_model(layout)
    n = load_cluster_model(layout.cluster_dir).num_experts
    require_finished_ensemble(layout, n)
    arm = arm or SUBMITTED_ARM
    rows = read_results(layout.arms_jsonl)
    results = datacomp_results(layout, rows, arm, n)
    metas_paths = sorted(layout.models_dir.glob("*.json"))
    metas = load_metas(metas_paths)
    costs = arm_costs(metas)
    subsets = list(dict.fromkeys([cfg["filter"]["use"], seed_subset(cfg)]))
    for name in subsets:
        if not layout.subset_file(name).is_file():
            raise ConfigError(f"filter.use / train.seed_subset: {layout.subset_file(name)} is missing "
                              "(is this the config the run used?)")
    # the data the experts added later (grow.experts) trained on, each as a subset file of its own
    grown = {f"grow_{name}": path for name, path in layout.grown_subset_files.items()}
    summary = {
        "method": f"MoDE-{n}", "arm": arm, "num_experts": n,
        "architecture": sorted({m["model"] for m in metas.values()}),
        "subsets": {"experts": cfg["filter"]["use"], "seed": seed_subset(cfg), **({"added_experts": list(grown)} if grown else {})},
        "dataset_size": {**{name: _subset_size(layout.subset_file(name)) for name in subsets},
                         **{name: _subset_size(path) for name, path in grown.items()}},
        "training": {"samples_seen": costs[arm]["samples_seen"] if arm in costs else None,
                     "flops": costs[arm]["flops"] if arm in costs else None},
        "average_main_metric": float(np.mean([r["metrics"]["main_metric"] for r in results])),
        "tasks": [r["key"] for r in results],
    }
    with atomic_dir(out_dir) as tmp:
        for name in subsets:
            _copy(layout.subset_file(name), tmp / "samples" / f"{name}.npy")
            stats = layout.subset_file(name).with_suffix(".json")
            if stats.is_file():
                _copy(stats, tmp / "samples" / stats.name)
        for name, path in grown.items():
            _copy(path, tmp / "samples" / f"{name}.npy")
        for meta in metas_paths:
            _copy(meta, tmp / "checkpoints" / meta.name)
            _copy(layout.checkpoint(meta.stem), tmp / "checkpoints" / f"{meta.stem}.pt")
        for path in layout.cluster_files.values():
            _copy(path, tmp / "cluster" / path.name)
        # dot files: not Snakemake's directory marker
        shutil.copytree(layout.routing_dir, tmp / "routing", ignore=shutil.ignore_patterns(".*"))
        _copy(Path(config), tmp / "config" / Path(config).name)
        _copy(layout.arms_jsonl, tmp / "arms.jsonl")
        _write(tmp / "results.jsonl", "".join(json.dumps(r) + "\n" for r in results))
        _write(tmp / "costs.json", json_text(costs))
        _write(tmp / "submission.json", json_text(summary))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {"results_dir": str(layout.root), "config": str(config), "arm": arm,
                    "files": [{"path": p.relative_to(tmp).as_posix(), "bytes": p.stat().st_size,
                               "sha256": file_sha256(p)} for p in files]}
        _write(tmp / MANIFEST, json_text(manifest))
    return manifest
