"""The claims table: what the run says about MoDE, each claim with its measured difference, a 95%
paired bootstrap confidence interval and a verdict.

A claim compares two sides on a set of tasks: the difference of their task-averaged main metrics
(points; each task's: top-1, mean per-class recall or mean_recall@1, modeflow.evaluate.main_metric).
A side is, per task, one arm, or the best of several arms (the oracle is the best single expert per
task; "the best other expert" of claim (a)): the best is picked again on every resample, as the
oracle is picked with the test labels.

The interval (docs/method.md §5): B resamples of each task's test samples with replacement, the
same resample for both sides and for every claim (paired); retrieval resamples its queries, the
texts and the images each; each resample is scored by the task's main metric (a mean per-class
recall over the classes the resample holds, its labels drawn with its samples); the seed of a
task's resamples is (seed, task name), so adding a task or a claim leaves the others' intervals as
they were. The 2.5th and 97.5th percentiles of the B
differences bound the interval. Verdict: `holds` when the interval lies above 0, `reversed` when it
lies below, `not shown` when it contains 0; `n/a` when an arm of the claim was not run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.names import DENSE_1X_MODEL, DENSE_MODEL, RANDOM_SPLIT, expert_index, expert_model
from modeflow.ensemble.arms import ORACLE, SHARP_ARM

CONFIDENCE = 0.95
HOLDS, NOT_SHOWN, REVERSED, NOT_AVAILABLE = "holds", "not shown", "reversed", "n/a"
BLOCK = 64  # resamples drawn at a time: bounded memory on big test sets

Hits = Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]  # {task: {arm: {query kind: (n,) bool}}}


@dataclass(frozen=True)
class Claim:
    """`key`: its letter; `statement`: what holding means; `side` / `versus`: {task: arms}, each
    side's value on a task being the best of its arms there (usually one arm)."""

    key: str
    statement: str
    side: Mapping[str, tuple[str, ...]]
    versus: Mapping[str, tuple[str, ...]]
    note: str = ""
    labels: tuple[str, str] = field(default=("", ""))  # the two sides as the table names them


def verdict(low: float, high: float) -> str:
    """holds / reversed when the interval excludes 0 on the side of the claim / against it."""
    if low > 0:
        return HOLDS
    if high < 0:
        return REVERSED
    return NOT_SHOWN


def _side(arms: str | Sequence[str], tasks: Sequence[str]) -> dict[str, tuple[str, ...]]:
    arms = (arms,) if isinstance(arms, str) else tuple(arms)
    return {task: arms for task in tasks}


def standard_claims(tasks: Sequence[str], experts: Sequence[str],
                    own_experts: Mapping[str, str] | None = None,
                    sharp_temperature: float | None = None) -> list[Claim]:
    """Claims (a)-(f) of MoDE (and (g), the routing-sharpness arm, when it ran), over `tasks`.

    experts: the expert names ("00", ...); own_experts: {task: expert name} of the tasks that
    belong to one data expert (the demo's domain tasks, from its ground truth), for claim (a)."""
    models = [expert_model(expert_index(e)) for e in experts]
    claims = []
    if own_experts:
        per_task = {}
        for task, own in own_experts.items():
            own_model = expert_model(expert_index(own))
            others = tuple(m for m in models if m != own_model)
            per_task[task] = ((own_model,), others)
            claims.append(Claim(f"a:{task}", f"{own_model} (its domain's expert) is the best expert on {task}",
                                {task: (own_model,)}, {task: others}, labels=(own_model, "best other expert")))
        claims.insert(0, Claim("a", "each expert is best on its own domain's task: its lead over the best "
                                    f"other expert, averaged over the {len(per_task)} domain tasks",
                               {t: v[0] for t, v in per_task.items()}, {t: v[1] for t, v in per_task.items()},
                               labels=("own expert", "best other expert")))
    pairs = [
        ("b", "MoDE > random split (experts on a random partition, same sizes, ensembled uniformly)", RANDOM_SPLIT),
        ("c", "MoDE > dense 1x (the seed trained to the end of the schedule)", DENSE_1X_MODEL),
        ("d", "MoDE > dense at equal compute (the seed continued for the experts' total epochs)", DENSE_MODEL),
        ("e", "MoDE's routing > the oracle (best single expert per task, picked with the test labels)", ORACLE),
        ("f", "MoDE > uniform (the experts' logits averaged)", "uniform"),
    ]
    for key, statement, versus in pairs:
        other = tuple(models) if versus == ORACLE else versus
        claims.append(Claim(key, statement, _side("mode", tasks), _side(other, tasks), labels=("mode", versus)))
    if sharp_temperature is not None:
        claims.append(Claim("g", f"sharp routing (softmax(s / {sharp_temperature:g})) > MoDE's code weights",
                            _side(SHARP_ARM, tasks), _side("mode", tasks), labels=(SHARP_ARM, "mode")))
    return claims


def _task_seed(seed: int, task: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(task.encode())])


def resampled_headlines(hits: Mapping[str, Mapping[str, np.ndarray]], task: str, arms: Sequence[str],
                        resamples: int, seed: int, main_metric: str | None = None) -> dict[str, np.ndarray]:
    """{arm: (resamples,) headline on each resample of the task's queries}: the same resample for
    every arm; each query kind (classification: images; retrieval: texts, images) drawn apart.
    main_metric: the task's (None: top-1 / mean_recall@1); mean_per_class_recall is computed on
    each resample from the hits' labels at the same indices."""
    from modeflow.ensemble.per_sample import LABELS, headline_from_hits, query_kinds, resampled_per_class_recall
    from modeflow.evaluate.main_metric import MEAN_PER_CLASS_RECALL, canonical_metric

    per_class = main_metric is not None and canonical_metric(main_metric) == MEAN_PER_CLASS_RECALL
    if per_class:
        for arm in arms:
            headline_from_hits(hits[arm], main_metric)  # checks each arm has its labels
    kinds = query_kinds(hits[arms[0]])
    sizes = {k: len(hits[arms[0]][k]) for k in kinds}
    for arm in arms:
        if {k: len(hits[arm][k]) for k in kinds} != sizes:
            raise ValueError(f"task {task!r}: arm {arm!r} has {[len(v) for v in hits[arm].values()]} queries, "
                             f"arm {arms[0]!r} {list(sizes.values())}")
    rngs = {k: np.random.default_rng(child) for k, child in zip(kinds, _task_seed(seed, task).spawn(len(kinds)))}
    out = {arm: np.zeros(resamples) for arm in arms}
    for lo in range(0, resamples, BLOCK):
        b = min(BLOCK, resamples - lo)
        for kind in kinds:
            idx = rngs[kind].integers(0, sizes[kind], size=(b, sizes[kind]))
            for arm in arms:
                if per_class:
                    out[arm][lo:lo + b] += resampled_per_class_recall(hits[arm][kind], hits[arm][LABELS], idx)
                else:
                    out[arm][lo:lo + b] += hits[arm][kind][idx].mean(axis=1) / len(kinds)
    return out


def _side_value(side: Mapping[str, tuple[str, ...]], per_task: Mapping[str, Mapping[str, np.ndarray | float]]):
    """Average over the side's tasks of the best of its arms on each task (per resample or not)."""
    return np.mean([np.max([per_task[t][a] for a in arms], axis=0) for t, arms in side.items()], axis=0)


def evaluate_claims(claims: Sequence[Claim], hits: Hits, *, resamples: int, seed: int,
                    main_metrics: Mapping[str, str] | None = None) -> list[dict]:
    """One row per claim: difference of the sides' task-averages, its 95% paired bootstrap interval
    and the verdict (module docstring); `n/a` rows name the arms that are missing. main_metrics:
    {task: its main metric} (absent: top-1 / mean_recall@1)."""
    metric = dict(main_metrics or {})
    from modeflow.ensemble.per_sample import headline_from_hits

    needed: dict[str, set[str]] = {}
    for claim in claims:
        for side in (claim.side, claim.versus):
            for task, arms in side.items():
                needed.setdefault(task, set()).update(arms)
    available = {t: [a for a in sorted(arms) if a in hits.get(t, {})] for t, arms in needed.items()}
    point = {t: {a: headline_from_hits(hits[t][a], metric.get(t)) for a in arms} for t, arms in available.items()}
    boot = {t: resampled_headlines(hits[t], t, arms, resamples, seed, metric.get(t))
            for t, arms in available.items() if arms}
    half = 100 * (1 - CONFIDENCE) / 2
    rows = []
    for claim in claims:
        tasks = list(claim.side)
        row = {"claim": claim.key, "statement": claim.statement, "arm": claim.labels[0],
               "versus": claim.labels[1], "tasks": tasks, "resamples": resamples, "seed": seed}
        missing = sorted({a for side in (claim.side, claim.versus) for t, arms in side.items()
                          for a in arms if a not in hits.get(t, {})})
        if missing:
            rows.append({**row, "difference": None, "ci_low": None, "ci_high": None, "verdict": NOT_AVAILABLE,
                         "note": f"not run: {', '.join(missing)}"})
            continue
        diff = float(_side_value(claim.side, point) - _side_value(claim.versus, point))
        dist = _side_value(claim.side, boot) - _side_value(claim.versus, boot)
        low, high = (float(v) for v in np.percentile(dist, [half, 100 - half]))
        rows.append({**row, "difference": diff, "ci_low": low, "ci_high": high, "verdict": verdict(low, high),
                     "note": claim.note})
    per_domain = [r for r in rows if r["claim"].startswith("a:") and r["verdict"] != NOT_AVAILABLE]
    for r in rows:
        if r["claim"] == "a" and per_domain:
            r["note"] = (f"per domain task: holds on {sum(d['verdict'] == HOLDS for d in per_domain)} of "
                         f"{len(per_domain)}, reversed on {sum(d['verdict'] == REVERSED for d in per_domain)}")
    return rows


# --- tables -----------------------------------------------------------------------------------

COLUMNS = ("claim", "statement", "arm", "versus", "difference", "ci_low", "ci_high", "verdict", "tasks",
           "resamples", "seed", "note")


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.1f}"


def claims_markdown(rows: Sequence[Mapping]) -> list[str]:
    """The claims section of summary.md: differences and intervals in points (percent)."""
    lines = ["## Claims", "",
             f"Difference of the task-averaged main metrics (points), with its {CONFIDENCE:.0%} paired "
             f"bootstrap interval over the test samples ({rows[0]['resamples'] if rows else 0} resamples; "
             "retrieval resamples queries). holds: the interval is above 0; reversed: below 0; not shown: "
             "it contains 0.", "",
             "| claim | statement | difference | 95% CI | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        ci = "" if r["ci_low"] is None else f"[{_points(r['ci_low'])}, {_points(r['ci_high'])}]"
        verdict_text = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| ({r['claim']}) | {r['statement']} | {_points(r['difference'])} | {ci} | {verdict_text} |")
    return lines


def claims_csv_rows(rows: Sequence[Mapping]) -> list[dict]:
    """Rows for claims.csv: the tasks joined with spaces, numbers as fractions (not points)."""
    return [{c: (" ".join(r[c]) if c == "tasks" else r.get(c)) for c in COLUMNS} for r in rows]
