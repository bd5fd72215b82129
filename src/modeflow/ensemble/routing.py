"""MoDE's task-adaptive ensemble (MODE.md §5), from saved per-model logits only.

A task's class names are embedded with the *clustering* text encoder and compared with the fine
cluster centers; experts whose fine clusters sit near the class names get more weight, and the
ensemble's logits are the weighted sum of the experts' raw cosine logits.

Distances: class embeddings are L2-normalised, fine centers are used exactly as stored, which is
the distance modeflow.cluster.model.assign uses to route training captions (it normalises the queries,
not the centers) and what MoDE's code does (torch.cdist to the raw centers).

Retrieval (paper Eq. 7): every caption is routed by its own embedding, as a one-class task (C = 1).

Two steps: compute_task_weights is the routing (it needs the tasks, the cluster model and the
encoder, never an expert), run at most once per task; run_ensemble combines the experts' saved
outputs with those saved weights and never embeds a text.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.atomic import atomic_path, save_npy, write_json
from modeflow.cluster.model import load_cluster_model
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.evaluate.zeroshot import headline, metrics_from_logits, read_task_outputs, retrieval_metrics
from modeflow.pool.plan import expert_name
from modeflow.evaluate.tasks import Task, fill_template, load_task, task_captions

CODE_SCALE = 5.0  # α = CODE_SCALE · log10(max(10, C − TOO_MANY_CLASSES))
CODE_TEMPERATURE = 8.0  # w = softmax(s / CODE_TEMPERATURE)
TOO_MANY_CLASSES = 200
FEW_CLASSES = 10  # below this, MoDE sharpens with exp(0.5 − √C)
PAPER_LAMBDA = 0.2
ENCODE_BATCH = 64  # short texts: bigger batches only pad more (MiniLM on CPU: 256 is 2x slower)
METHOD_ARMS = ("mode", "mode_paper", "uniform", "top1")
ORACLE = "oracle"
ROUTING_VARIANTS = {"mode": "code", "mode_paper": "paper"}  # weighted arm -> route_queries variant
WEIGHTS_JSON = "weights.json"
QUERY_WEIGHTS = "query_weights"  # per-caption weights of retrieval tasks, next to weights.json


# --- embeddings -------------------------------------------------------------------------------


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_embeddings(encoder, classnames: Sequence[str], templates: Sequence[str],
                     batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Per class: fill every template, embed, L2-normalise, average, renormalise -> (C, D)."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    per_text = _normalize(encoder.encode(texts, batch_size))
    return _normalize(per_text.reshape(len(classnames), len(templates), -1).mean(axis=1)).astype(np.float32)


def nearest_fine(emb: np.ndarray, fine_centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L2 distance, index) of each normalised row's nearest fine center."""
    emb = _normalize(emb)
    centers = np.asarray(fine_centers, dtype=np.float64)
    if emb.shape[1] != centers.shape[1]:
        raise InputDataError(f"text embeddings have dim {emb.shape[1]} but the fine centers have "
                             f"{centers.shape[1]}: use the encoder the clustering used")
    d2 = (emb ** 2).sum(1)[:, None] - 2 * emb @ centers.T + (centers ** 2).sum(1)[None, :]
    idx = d2.argmin(axis=1)
    return np.sqrt(np.maximum(d2[np.arange(len(emb)), idx], 0.0)), idx


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# --- weights ----------------------------------------------------------------------------------


def code_alpha_beta(num_classes: int) -> tuple[float, float]:
    alpha = CODE_SCALE * math.log10(max(10, num_classes - TOO_MANY_CLASSES))
    beta = math.exp(0.5 - math.sqrt(num_classes)) if num_classes < FEW_CLASSES else 0.0
    return alpha, beta


def mode_weights_code(class_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                      num_experts: int) -> np.ndarray:
    """MoDE code's weights: s_c = Σ_{l: g(l)=c} exp((β − d_l)·α), 0 for experts no class maps to;
    w = softmax(s / 8)."""
    dist, fine = nearest_fine(class_emb, fine_centers)
    alpha, beta = code_alpha_beta(len(dist))
    s = np.bincount(np.asarray(fine_to_coarse)[fine], weights=np.exp((beta - dist) * alpha),
                    minlength=num_experts)
    return _softmax(s / CODE_TEMPERATURE)


def mode_weights_paper(class_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                       num_experts: int, lam: float = PAPER_LAMBDA) -> np.ndarray:
    """The paper's Eqs. 4-6: A_l = exp(−d_l² / λ) to each class's nearest fine center only
    (× exp(0.5 − √C) when C < 10; λ / ln C when C > 200); p(c) ∝ exp(Σ_{l: g(l)=c} A_l)."""
    dist, fine = nearest_fine(class_emb, fine_centers)
    c = len(dist)
    if c > TOO_MANY_CLASSES:
        lam = lam / math.log(c)
    a = np.exp(-dist ** 2 / lam)
    if c < FEW_CLASSES:
        a = a * math.exp(0.5 - math.sqrt(c))
    s = np.bincount(np.asarray(fine_to_coarse)[fine], weights=a, minlength=num_experts)
    return _softmax(s)


def route_queries(query_emb: np.ndarray, fine_centers: np.ndarray, fine_to_coarse: np.ndarray,
                  num_experts: int, variant: str = "code") -> np.ndarray:
    """Weights (T, n) routing each query (caption) alone, i.e. as a task of C = 1 class.
    Vectorised form of mode_weights_* applied row by row."""
    dist, fine = nearest_fine(query_emb, fine_centers)
    expert = np.asarray(fine_to_coarse)[fine]
    if variant == "code":
        alpha, beta = code_alpha_beta(1)
        score, temperature = np.exp((beta - dist) * alpha), CODE_TEMPERATURE
    elif variant == "paper":
        score, temperature = np.exp(-dist ** 2 / PAPER_LAMBDA) * math.exp(0.5 - 1.0), 1.0
    else:
        raise ValueError(f"unknown routing variant {variant!r}")
    s = np.zeros((len(dist), num_experts))
    s[np.arange(len(dist)), expert] = score
    return _softmax(s / temperature)


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


def _arm_row(arm: str, kind: str, metrics: dict, **extra) -> dict:
    return {"arm": arm, "kind": kind, "headline": headline(kind, metrics), "metrics": metrics, **extra}


def _with_oracle(rows: list[dict], experts: Sequence[str], kind: str) -> list[dict]:
    singles = [r for r in rows if r["arm"] in {f"expert_{e}" for e in experts}]
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
    rows += [_arm_row(f"expert_{e}", kind, score(out, target)) for e, out in zip(experts, expert_outputs)]
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
    clash = [m for m in extras if m in (*METHOD_ARMS, ORACLE) or m.startswith("expert_")]
    if clash:
        raise ModeflowError(f"ensemble: extra model name {clash[0]!r} clashes with an arm's name")
    return experts, extras


def _load_outputs(eval_dirs, models, task: Task) -> list[dict[str, np.ndarray]]:
    loaded = [read_task_outputs(eval_dirs[m], task, m) for m in models]
    target = "labels" if task.kind == "classification" else "text_to_image"
    main = "logits" if task.kind == "classification" else "similarity"
    for m, out in zip(models, loaded):
        if out[main].shape != loaded[0][main].shape or not np.array_equal(out[target], loaded[0][target]):
            raise InputDataError(f"task {task.name!r}: model {m!r}'s {main}/{target} "
                                 f"({Path(eval_dirs[m]) / task.name}) do not match model {models[0]!r}'s")
    return loaded


def _classification_entry(task: Task, encoder, args: tuple) -> dict:
    emb = class_embeddings(encoder, task.classnames, task.templates)
    w = {"mode": mode_weights_code(emb, *args), "mode_paper": mode_weights_paper(emb, *args)}
    return {"kind": task.kind, "num_classes": len(task.classnames), **{k: v.tolist() for k, v in w.items()}}


def _retrieval_entry(task: Task, encoder, args: tuple) -> tuple[dict, dict]:
    """(per-caption weights {arm: (T, n)}, weights.json entry)."""
    # captions in the order evaluate_model saves them (text_to_image order): run_ensemble checks the count
    captions = task_captions(task)
    emb = _normalize(encoder.encode(captions, ENCODE_BATCH))
    w = {arm: route_queries(emb, *args, variant=variant) for arm, variant in ROUTING_VARIANTS.items()}
    entry = {"kind": task.kind, "num_queries": len(captions), "routing": "per caption (C = 1)",
             "note": "mode / mode_paper are the per-caption weights averaged over captions",
             "query_weights": {arm: f"{QUERY_WEIGHTS}/{task.name}.{arm}.npy" for arm in w}}
    return w, {**entry, **{k: v.mean(axis=0).tolist() for k, v in w.items()}}


def compute_task_weights(tasks: Sequence[str | Path], cluster_dir: str | Path | Mapping, encoder,
                         out_dir: str | Path) -> dict:
    """MoDE's routing, once per task: both variants' expert weights from the task's class names
    (classification) or each caption (retrieval), embedded with the clustering encoder. Needs no
    expert and no evaluation.

    Writes out_dir/query_weights/<task>.<arm>.npy (retrieval, (T, n) float64, arm = mode |
    mode_paper) and then out_dir/weights.json {task: {kind, mode, mode_paper, experts, ...}};
    returns the weights.json content."""
    out_dir = Path(out_dir)
    cluster = load_cluster_model(cluster_dir)
    args = (cluster.fine_centers, cluster.fine_to_coarse, cluster.num_experts)
    experts = [expert_name(i) for i in range(cluster.num_experts)]
    loaded_tasks = [load_task(t) for t in tasks]
    names = [t.name for t in loaded_tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputDataError(f"ensemble weights: two tasks are named {dupes[0]!r}; task names must be unique")
    weights_json = {}
    for task in loaded_tasks:
        if task.kind == "classification":
            entry = _classification_entry(task, encoder, args)
        else:
            w, entry = _retrieval_entry(task, encoder, args)
            for arm, value in w.items():
                # float64, as computed: the combining step then gives exactly the in-memory numbers
                save_npy(out_dir / entry["query_weights"][arm], value)
        weights_json[task.name] = {**entry, "experts": experts}
    # last, so a weights.json on disk means its query weights are complete
    write_json(out_dir / WEIGHTS_JSON, weights_json)
    return weights_json


def read_task_weights(weights_dir: str | Path, tasks: Sequence[Task],
                      experts: Sequence[str]) -> dict[str, dict]:
    """weights.json's entries for `tasks`, checked against the tasks and the cluster model's experts."""
    path = Path(weights_dir) / WEIGHTS_JSON
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the ensemble weights {path}: {exc}") from None
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
        if any(len(entry.get(arm, [])) != len(experts) for arm in ROUTING_VARIANTS):
            raise InputDataError(f"{path}: task {task.name!r} needs {len(experts)} weights per variant "
                                 f"({', '.join(ROUTING_VARIANTS)})")
        entries[task.name] = entry
    return entries


def _arm_weights(entry: dict, weights_dir: Path, task: Task, loaded: list[dict[str, np.ndarray]]) -> dict:
    """The saved weights in the form ensemble_arms takes, checked against the saved outputs."""
    where = weights_dir / WEIGHTS_JSON
    if task.kind == "classification":
        num_classes = loaded[0]["logits"].shape[1]
        if entry.get("num_classes") != num_classes:
            raise InputDataError(f"{where}: task {task.name!r} was weighted for {entry.get('num_classes')} "
                                 f"classes but the saved logits have {num_classes}")
        return {arm: np.asarray(entry[arm], dtype=np.float64) for arm in ROUTING_VARIANTS}
    num_texts, num_experts = len(loaded[0]["text_to_image"]), len(entry["experts"])
    weights = {}
    for arm in ROUTING_VARIANTS:
        path = weights_dir / entry.get("query_weights", {}).get(arm, f"{QUERY_WEIGHTS}/{task.name}.{arm}.npy")
        if not path.is_file():
            raise InputDataError(f"{path} is missing (listed by {where} for task {task.name!r})")
        weights[arm] = np.load(path)
        if weights[arm].shape != (num_texts, num_experts):
            raise InputDataError(f"{path}: shape {weights[arm].shape}, but task {task.name!r} has "
                                 f"{num_texts} texts in the saved similarities and {num_experts} experts")
    return weights


def run_ensemble(eval_dirs: Mapping[str, str | Path], tasks: Sequence[str | Path],
                 cluster_dir: str | Path | Mapping, weights_dir: str | Path,
                 out_dir: str | Path) -> list[dict]:
    """All arms on all tasks from saved evaluations and saved weights (compute_task_weights'
    weights_dir); runs no model at all.

    eval_dirs: model -> evaluate_model's out_dir. Experts are keyed by modeflow.pool.plan.expert_name
    ("00", "01", ...) and all of the cluster model's experts must be there; other keys ("seed",
    "dense") are extra single-model rows. Writes arms.jsonl, summary.csv, summary.md in out_dir;
    returns the arms.jsonl rows."""
    out_dir, weights_dir = Path(out_dir), Path(weights_dir)
    cluster = load_cluster_model(cluster_dir)
    experts, extras = _split_models(eval_dirs, cluster.num_experts)
    loaded_tasks = [load_task(t) for t in tasks]
    entries = read_task_weights(weights_dir, loaded_tasks, experts)
    rows = []
    for task in loaded_tasks:
        loaded = _load_outputs(eval_dirs, experts + extras, task)
        weights = _arm_weights(entries[task.name], weights_dir, task, loaded)
        main, target = (("logits", "labels") if task.kind == "classification"
                        else ("similarity", "text_to_image"))
        outputs = [o[main] for o in loaded]
        arms = ensemble_arms(task.kind, outputs[:len(experts)], loaded[0][target], experts, weights,
                             dict(zip(extras, outputs[len(experts):])))
        rows += [{"task": task.name, **row} for row in arms]
    _write_lines(out_dir / "arms.jsonl", [json.dumps(r, sort_keys=True) for r in rows])
    table = summary_table(rows, [t.name for t in loaded_tasks])
    _write_csv(out_dir / "summary.csv", table)
    _write_lines(out_dir / "summary.md", summary_markdown(table, experts))
    return rows


# --- summary ----------------------------------------------------------------------------------


def summary_table(rows: Sequence[dict], task_names: Sequence[str]) -> list[dict]:
    """One dict per arm (first-seen order): arm, each task's headline, average (unweighted)."""
    arms: dict[str, dict] = {}
    for r in rows:
        arms.setdefault(r["arm"], {"arm": r["arm"]})[r["task"]] = r["headline"]
    for row in arms.values():
        row["average"] = float(np.mean([row[t] for t in task_names]))
    return list(arms.values())


def summary_markdown(table: Sequence[dict], experts: Sequence[str]) -> list[str]:
    cols = [c for c in table[0] if c != "arm"]
    lines = [f"# MoDE ensemble ({len(experts)} experts)", "",
             "Headline per task: top-1 accuracy (classification), mean_recall@1 (retrieval), in %.",
             "", "| arm | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in table:
        name = "oracle (best single expert; not a method)" if row["arm"] == ORACLE else row["arm"]
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[c]:.1f}" for c in cols) + " |")
    lines += ["", "mode: MoDE code weights; mode_paper: the paper's Eqs. 4-6; uniform: mean of the "
              "experts' logits; top1: only the highest-weight expert; oracle: the best single expert "
              "chosen per task with the test labels, an upper bound for picking one expert."]
    return lines


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))


def _write_csv(path: Path, table: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
