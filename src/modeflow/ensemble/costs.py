"""Training cost of each compared arm, from the training runs' meta json (samples seen, FLOPs).

Every arm starts from the seed, so its cost includes the seed's: an expert alone costs seed + that
expert, the MoDE ensemble (and uniform / top-1 / oracle, which use the same experts) seed + all
experts, the dense baseline seed + dense. MoDE's identity: dense == sum of experts, so the two
main arms match in compute (docs/method.md §4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from modeflow.common.names import DENSE_MODEL, SEED_MODEL, is_expert_model
from modeflow.ensemble.arms import METHOD_ARMS, ORACLE

ENSEMBLE_ARMS = (*METHOD_ARMS, ORACLE)  # the arms that need every expert trained


def _cost(meta: Mapping) -> dict:
    return {"samples_seen": int(meta["samples_seen"]), "flops": float(meta["flops"]),
            "wall_seconds": float(meta.get("wall_seconds") or 0.0)}


def _add(*costs: Mapping) -> dict:
    return {k: sum(c[k] for c in costs) for k in ("samples_seen", "flops", "wall_seconds")}


def arm_costs(metas: Mapping[str, Mapping]) -> dict[str, dict]:
    """{arm: {samples_seen, flops, wall_seconds}} from {run name: meta} (seed, expert_XX, dense)."""
    if SEED_MODEL not in metas:
        raise ValueError("arm costs need the seed run's meta")
    seed = _cost(metas[SEED_MODEL])
    experts = sorted(name for name in metas if is_expert_model(name))
    out = {SEED_MODEL: seed}
    for name in experts:
        out[name] = _add(seed, _cost(metas[name]))
    if experts:
        all_experts = _add(seed, *(_cost(metas[name]) for name in experts))
        out.update({arm: dict(all_experts) for arm in ENSEMBLE_ARMS})
    if DENSE_MODEL in metas:
        out[DENSE_MODEL] = _add(seed, _cost(metas[DENSE_MODEL]))
    return out


def load_metas(paths: Iterable[str | Path]) -> dict[str, dict]:
    metas = {}
    for path in paths:
        meta = json.loads(Path(path).read_text())
        metas[meta["name"]] = meta
    return metas
