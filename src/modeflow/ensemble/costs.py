"""Cost of each compared arm: training, from the training runs' meta json (samples seen, FLOPs,
wall time), and inference, as the model forward passes an arm needs per test input.

Every arm starts from the seed, so its training cost includes the seed's: an expert alone costs
seed + that expert, the MoDE ensemble (and uniform / top-1 / oracle, which use the same experts)
seed + all experts, the dense baselines seed + their run (`dense` at equal compute, `dense_1x` to
the end of the schedule), the random split seed + all its experts. MoDE's identity: dense == sum
of experts, so those two arms match in training compute (docs/method.md §4).

Forward passes per input: an ensemble over n experts runs all n (mode, mode_paper, mode_code,
mode_sharp, uniform, random_split); top1 and the oracle run one expert (top1 on retrieval: each
caption runs on its routed expert, and the images on every expert some caption routes to, at most
n); a single model runs once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from modeflow.common.names import RANDOM_SPLIT, SEED_MODEL, is_expert_model, is_random_model
from modeflow.ensemble.arms import METHOD_ARMS, ORACLE

ENSEMBLE_ARMS = (*METHOD_ARMS, ORACLE)  # the arms that need every expert trained
ONE_EXPERT_ARMS = ("top1", ORACLE)  # ensemble arms that run one expert per input


def _cost(meta: Mapping) -> dict:
    return {"samples_seen": int(meta["samples_seen"]), "flops": float(meta["flops"]),
            "wall_seconds": float(meta.get("wall_seconds") or 0.0)}


def _add(*costs: Mapping) -> dict:
    return {k: sum(c[k] for c in costs) for k in ("samples_seen", "flops", "wall_seconds")}


def arm_costs(metas: Mapping[str, Mapping]) -> dict[str, dict]:
    """{arm: {samples_seen, flops, wall_seconds, forward_passes}} from {run name: meta} (seed,
    expert_XX, dense, dense_1x, random_XX)."""
    if SEED_MODEL not in metas:
        raise ValueError("arm costs need the seed run's meta")
    seed = _cost(metas[SEED_MODEL])
    experts = sorted(name for name in metas if is_expert_model(name))
    randoms = sorted(name for name in metas if is_random_model(name))
    out = {SEED_MODEL: {**seed, "forward_passes": 1}}
    for name in experts:
        out[name] = {**_add(seed, _cost(metas[name])), "forward_passes": 1}
    if experts:
        all_experts = _add(seed, *(_cost(metas[name]) for name in experts))
        out.update({arm: {**all_experts, "forward_passes": 1 if arm in ONE_EXPERT_ARMS else len(experts)}
                    for arm in ENSEMBLE_ARMS})
    if randoms:
        out[RANDOM_SPLIT] = {**_add(seed, *(_cost(metas[name]) for name in randoms)), "forward_passes": len(randoms)}
    for name in metas:  # the other single models: dense, dense_1x
        if name not in out and not is_random_model(name):
            out[name] = {**_add(seed, _cost(metas[name])), "forward_passes": 1}
    return out


def load_metas(paths: Iterable[str | Path]) -> dict[str, dict]:
    metas = {}
    for path in paths:
        meta = json.loads(Path(path).read_text())
        metas[meta["name"]] = meta
    return metas
