"""The combining step: every arm on every task from the models' saved outputs and the routing
step's saved weights, and the claims table on their per-query hits; runs no model and embeds no
text.

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
from modeflow.ensemble.arms import METHOD_ARMS, ORACLE, UNIFORM_GROUPS, entry_arms
from modeflow.ensemble.claims import evaluate_claims, standard_claims
from modeflow.ensemble.per_sample import sample_hits, save_hits
from modeflow.ensemble.saved_weights import arm_weights, read_task_weights
from modeflow.ensemble.summary import PER_SAMPLE, write_tables
from modeflow.evaluate.main_metric import DEFAULT, canonical_metric, main_metric_note
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


def _arm_row(arm: str, kind: str, metrics: dict, main_metric: str | None = None, **extra) -> dict:
    """`headline`: the task's main metric's value; `main_metric`: its name."""
    name = canonical_metric(main_metric) if main_metric else DEFAULT[kind]
    return {"arm": arm, "kind": kind, "headline": headline(kind, metrics, name), "main_metric": name,
            "metrics": metrics, **extra}


def _with_oracle(rows: list[dict], experts: Sequence[str], kind: str, hits: dict | None,
                 main_metric: str | None = None) -> list[dict]:
    singles = [r for r in rows if r["arm"] in {_expert_arm(e) for e in experts}]
    best = max(singles, key=lambda r: r["headline"])  # first of equals: the lower expert index
    if hits is not None:
        hits[ORACLE] = hits[best["arm"]]
    return rows + [_arm_row(ORACLE, kind, best["metrics"], main_metric, oracle_of=best["arm"])]


def ensemble_arms(kind: str, expert_outputs: Sequence[np.ndarray], target: np.ndarray,
                  experts: Sequence[str], weights: Mapping[str, np.ndarray],
                  extra_outputs: Mapping[str, np.ndarray] | None = None,
                  groups: Mapping[str, Sequence[np.ndarray]] | None = None,
                  hits: dict | None = None, main_metric: str | None = None) -> list[dict]:
    """Metrics of every arm on one task; each row's headline is the task's `main_metric`
    (modeflow.evaluate.main_metric; None: top-1 / mean_recall@1), which also picks the oracle.

    classification: outputs are (N, C) logits, target the labels, weights {arm: (n,)} for the
    weighted arms (modeflow.ensemble.arms.routing_arms: "mode" first). retrieval: outputs are
    (N, T) similarities, target text_to_image, weights per query {arm: (T, n)}. extra_outputs: single
    models' outputs (seed, dense, ...), one row each; groups: {arm: outputs} averaged uniformly into
    one row each (the random split's experts). `hits`, when given, receives every arm's per-query
    hits (modeflow.ensemble.per_sample)."""
    rows = _ensemble_rows(kind, expert_outputs, target, experts, weights, hits, main_metric)
    singles = dict(extra_outputs or {})
    singles.update({arm: np.mean(outputs, axis=0) for arm, outputs in (groups or {}).items()})
    for name, out in singles.items():
        rows.append(_scored(name, kind, out, target, hits, main_metric))
    return rows


def _scored(arm: str, kind: str, scores: np.ndarray, target: np.ndarray, hits: dict | None,
            main_metric: str | None = None) -> dict:
    metrics = (metrics_from_logits if kind == "classification" else retrieval_metrics)(scores, target)
    if hits is not None:
        hits[arm] = sample_hits(kind, scores, target)
    return _arm_row(arm, kind, metrics, main_metric)


def _ensemble_rows(kind, expert_outputs, target, experts, weights, hits, main_metric=None) -> list[dict]:
    if kind == "classification":
        combine = ensemble_logits

        def top1(w):  # only the highest-weight expert
            return expert_outputs[int(np.argmax(w))]
    else:
        combine = ensemble_similarity

        def top1(w):  # per text, the single expert its caption routes to
            return ensemble_similarity(expert_outputs, np.eye(len(experts))[w.argmax(axis=1)])
    m = main_metric
    rows = [_scored(arm, kind, combine(expert_outputs, w), target, hits, m) for arm, w in weights.items()]
    rows += [_scored("uniform", kind, np.mean(expert_outputs, axis=0), target, hits, m),
             _scored("top1", kind, top1(weights["mode"]), target, hits, m)]
    rows += [_scored(_expert_arm(e), kind, out, target, hits, m) for e, out in zip(experts, expert_outputs)]
    return _with_oracle(rows, experts, kind, hits, m)


# --- the step ---------------------------------------------------------------------------------


def _main_metric(task: Task) -> str:
    return task.main_metric.name if task.main_metric else DEFAULT[task.kind]


def _split_models(eval_dirs: Mapping[str, str | Path], num_experts: int,
                  grouped: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    experts = [expert_name(i) for i in range(num_experts)]
    missing = [e for e in experts if e not in eval_dirs]
    if missing:
        raise ModeflowError(f"ensemble: expert {missing[0]!r} has no evaluation directory (the cluster "
                            f"model has {num_experts} experts: {', '.join(experts)}; got "
                            f"{', '.join(eval_dirs) or 'none'}); never ensembling fewer experts")
    extras = [m for m in eval_dirs if m not in experts and m not in grouped]
    clash = [m for m in extras if m in (*METHOD_ARMS, ORACLE, *UNIFORM_GROUPS) or is_expert_model(m)]
    if clash:
        raise ModeflowError(f"ensemble: extra model name {clash[0]!r} clashes with an arm's name")
    return experts, extras


def task_eval_dir(dirs: str | Path | Sequence[str | Path], task: str) -> Path:
    """The evaluation directory of a model that holds `task`: a model's evaluations may lie in
    several directories (eval/<model>/ for the configured tasks, grow/<name>/eval/<model>/ for an
    added expert's); the first holding the task's directory, else the first (whose error names it)."""
    dirs = [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]
    return next((d for d in dirs if (d / task).is_dir()), dirs[0])


def _load_outputs(eval_dirs, models, task: Task) -> list[dict[str, np.ndarray]]:
    where = {m: task_eval_dir(eval_dirs[m], task.name) for m in models}
    loaded = [read_task_outputs(where[m], task, m) for m in models]
    main, target = ARRAYS[task.kind]
    for m, out in zip(models, loaded):
        if out[main].shape != loaded[0][main].shape or not np.array_equal(out[target], loaded[0][target]):
            raise InputDataError(f"task {task.name!r}: model {m!r}'s {main}/{target} "
                                 f"({where[m] / task.name}) do not match model {models[0]!r}'s")
    return loaded


def run_ensemble(eval_dirs: Mapping[str, str | Path], tasks: Sequence[str | Path],
                 cluster_dir: str | Path | Mapping, weights_dir: str | Path,
                 out_dir: str | Path, *, groups: Mapping[str, Sequence[str]] | None = None,
                 own_experts: Mapping[str, str] | None = None, resamples: int = 1000,
                 seed: int = 0) -> list[dict]:
    """All arms on all tasks from saved evaluations and saved weights (compute_task_weights'
    weights_dir); runs no model at all. Then the claims table (modeflow.ensemble.claims) on the
    arms' per-query hits.

    eval_dirs: model -> evaluate_model's out_dir, or a list of them (task_eval_dir). Experts are keyed by modeflow.common.names.expert_name
    ("00", "01", ...) and all of the cluster model's experts must be there; other keys ("seed",
    "dense", "dense_1x") are extra single-model rows, except those `groups` lists: {arm: [models]}
    averaged uniformly into one row (random_split). own_experts: {task: expert name} for claim (a)
    (the demo's domain tasks). Writes arms.jsonl, summary.csv, summary.md, claims.{csv,json} and
    per_sample/ in out_dir; returns the arms.jsonl rows."""
    cluster = load_cluster_model(cluster_dir)
    groups = {arm: list(models) for arm, models in (groups or {}).items()}
    grouped = [m for models in groups.values() for m in models]
    missing = [m for m in grouped if m not in eval_dirs]
    if missing:
        raise ModeflowError(f"ensemble: model {missing[0]!r} of a uniform group has no evaluation directory")
    experts, extras = _split_models(eval_dirs, cluster.num_experts, grouped)
    loaded_tasks = [load_task(t) for t in tasks]
    entries = read_task_weights(weights_dir, loaded_tasks, experts)
    rows, hits = [], {}
    for task in loaded_tasks:
        models = experts + extras + grouped
        loaded = dict(zip(models, _load_outputs(eval_dirs, models, task)))
        weights = arm_weights(entries[task.name], weights_dir, task, loaded[experts[0]])
        main, target = ARRAYS[task.kind]
        hits[task.name] = {}
        arms = ensemble_arms(task.kind, [loaded[e][main] for e in experts], loaded[experts[0]][target], experts,
                             weights, {m: loaded[m][main] for m in extras},
                             {arm: [loaded[m][main] for m in members] for arm, members in groups.items()},
                             hits=hits[task.name], main_metric=_main_metric(task))
        rows += [{"task": task.name, **row} for row in arms]
    names = [t.name for t in loaded_tasks]
    sharp = entries[names[0]].get("sharp_temperature") if names else None
    claims = evaluate_claims(standard_claims(names, experts, own_experts, sharp), hits,
                             resamples=resamples, seed=seed,
                             main_metrics={t.name: _main_metric(t) for t in loaded_tasks})
    save_hits(Path(out_dir) / PER_SAMPLE, hits)
    write_tables(out_dir, rows, names, experts, claims=claims,
                 metric_notes=[main_metric_note(t.name, t.main_metric or _main_metric(t)) for t in loaded_tasks],
                 mode_formula=entry_arms(entries[names[0]])["mode"] if names else "code")
    return rows
