"""The combining step: every arm on every task from the models' saved outputs and the routing
step's saved weights; runs no model and embeds no text.

The MoDE arms' scores are the weighted sum of the experts' raw cosine logits (classification: one
weight per expert per task; retrieval: per caption, each text column with its own weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.model import load_cluster_model
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.common.names import expert_index, expert_model, expert_name, is_expert_model
from modeflow.ensemble.arms import METHOD_ARMS, ORACLE
from modeflow.ensemble.saved_weights import arm_weights, read_task_weights
from modeflow.ensemble.summary import write_tables
from modeflow.evaluate.metrics import headline, metrics_from_logits, retrieval_metrics
from modeflow.evaluate.outputs import ARRAYS, read_task_outputs
from modeflow.evaluate.tasks import Task, load_task


def ensemble_logits(expert_logits: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ_c w_c L_c over the experts' raw cosine logits."""
    if len(expert_logits) != len(weights):
        raise ValueError(f"{len(expert_logits)} experts but {len(weights)} weights")
    out = np.zeros_like(np.asarray(expert_logits[0], dtype=np.float32))
    for logits, w in zip(expert_logits, weights):
        out += np.float32(w) * logits
    return out


def ensemble_similarity(expert_sims: Sequence[np.ndarray], query_weights: np.ndarray) -> np.ndarray:
    """combined[i, j] = Σ_c w_c(text j) S_c[i, j]: each text column gets its own weights."""
    out = np.zeros_like(np.asarray(expert_sims[0], dtype=np.float32))
    for c, sim in enumerate(expert_sims):
        out += sim * query_weights[:, c].astype(np.float32)[None, :]
    return out


# --- arms -------------------------------------------------------------------------------------


def _expert_arm(expert: str) -> str:
    """An expert's single-model arm: its model name ("00" -> "expert_00")."""
    return expert_model(expert_index(expert))


def _arm_row(arm: str, kind: str, metrics: dict, **extra) -> dict:
    return {"arm": arm, "kind": kind, "headline": headline(kind, metrics), "metrics": metrics, **extra}


def _with_oracle(rows: list[dict], experts: Sequence[str], kind: str) -> list[dict]:
    singles = [r for r in rows if r["arm"] in {_expert_arm(e) for e in experts}]
    best = max(singles, key=lambda r: r["headline"])  # first of equals: the lower expert index
    return rows + [_arm_row(ORACLE, kind, best["metrics"], oracle_of=best["arm"])]


def ensemble_arms(kind: str, expert_outputs: Sequence[np.ndarray], target: np.ndarray,
                  experts: Sequence[str], weights: Mapping[str, np.ndarray],
                  extra_outputs: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """Metrics of every arm on one task.

    classification: outputs are (N, C) logits, target the labels, weights {"mode": (n,),
    "mode_paper": (n,)}. retrieval: outputs are (N, T) similarities, target text_to_image,
    weights per query {"mode": (T, n), "mode_paper": (T, n)}."""
    if kind == "classification":
        score = metrics_from_logits
        combine = ensemble_logits

        def top1(w):  # only the highest-weight expert
            return expert_outputs[int(np.argmax(w))]
    else:
        score = retrieval_metrics
        combine = ensemble_similarity

        def top1(w):  # per text, the single expert its caption routes to
            return ensemble_similarity(expert_outputs, np.eye(len(experts))[w.argmax(axis=1)])
    rows = [_arm_row("mode", kind, score(combine(expert_outputs, weights["mode"]), target)),
            _arm_row("mode_paper", kind, score(combine(expert_outputs, weights["mode_paper"]), target)),
            _arm_row("uniform", kind, score(np.mean(expert_outputs, axis=0), target)),
            _arm_row("top1", kind, score(top1(weights["mode"]), target))]
    rows += [_arm_row(_expert_arm(e), kind, score(out, target)) for e, out in zip(experts, expert_outputs)]
    rows = _with_oracle(rows, experts, kind)
    rows += [_arm_row(name, kind, score(out, target)) for name, out in (extra_outputs or {}).items()]
    return rows


# --- the step ---------------------------------------------------------------------------------


def _split_models(eval_dirs: Mapping[str, str | Path], num_experts: int) -> tuple[list[str], list[str]]:
    experts = [expert_name(i) for i in range(num_experts)]
    missing = [e for e in experts if e not in eval_dirs]
    if missing:
        raise ModeflowError(f"ensemble: expert {missing[0]!r} has no evaluation directory (the cluster "
                            f"model has {num_experts} experts: {', '.join(experts)}; got "
                            f"{', '.join(eval_dirs) or 'none'}); never ensembling fewer experts")
    extras = [m for m in eval_dirs if m not in experts]
    clash = [m for m in extras if m in (*METHOD_ARMS, ORACLE) or is_expert_model(m)]
    if clash:
        raise ModeflowError(f"ensemble: extra model name {clash[0]!r} clashes with an arm's name")
    return experts, extras


def _load_outputs(eval_dirs, models, task: Task) -> list[dict[str, np.ndarray]]:
    loaded = [read_task_outputs(eval_dirs[m], task, m) for m in models]
    main, target = ARRAYS[task.kind]
    for m, out in zip(models, loaded):
        if out[main].shape != loaded[0][main].shape or not np.array_equal(out[target], loaded[0][target]):
            raise InputDataError(f"task {task.name!r}: model {m!r}'s {main}/{target} "
                                 f"({Path(eval_dirs[m]) / task.name}) do not match model {models[0]!r}'s")
    return loaded


def run_ensemble(eval_dirs: Mapping[str, str | Path], tasks: Sequence[str | Path],
                 cluster_dir: str | Path | Mapping, weights_dir: str | Path,
                 out_dir: str | Path) -> list[dict]:
    """All arms on all tasks from saved evaluations and saved weights (compute_task_weights'
    weights_dir); runs no model at all.

    eval_dirs: model -> evaluate_model's out_dir. Experts are keyed by modeflow.common.names.expert_name
    ("00", "01", ...) and all of the cluster model's experts must be there; other keys ("seed",
    "dense") are extra single-model rows. Writes arms.jsonl, summary.csv, summary.md in out_dir;
    returns the arms.jsonl rows."""
    cluster = load_cluster_model(cluster_dir)
    experts, extras = _split_models(eval_dirs, cluster.num_experts)
    loaded_tasks = [load_task(t) for t in tasks]
    entries = read_task_weights(weights_dir, loaded_tasks, experts)
    rows = []
    for task in loaded_tasks:
        loaded = _load_outputs(eval_dirs, experts + extras, task)
        weights = arm_weights(entries[task.name], weights_dir, task, loaded[0])
        main, target = ARRAYS[task.kind]
        outputs = [o[main] for o in loaded]
        arms = ensemble_arms(task.kind, outputs[:len(experts)], loaded[0][target], experts, weights,
                             dict(zip(extras, outputs[len(experts):])))
        rows += [{"task": task.name, **row} for row in arms]
    write_tables(out_dir, rows, [t.name for t in loaded_tasks], experts)
    return rows
