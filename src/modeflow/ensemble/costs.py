"""Training cost of each compared arm, from the training runs' meta json (samples seen, FLOPs).

Every arm starts from the seed, so its cost includes the seed's: an expert alone costs seed + that
expert, the MoDE ensemble (and uniform / top-1 / oracle, which use the same experts) seed + all
experts, the dense baseline seed + dense. MoDE's identity: dense == sum of experts, so the two
main arms match in compute (MODE.md §4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

ENSEMBLE_ARMS = ("mode", "mode_paper", "uniform", "top1", "oracle")


def _cost(meta: Mapping) -> dict:
    return {"samples_seen": int(meta["samples_seen"]), "flops": float(meta["flops"]),
            "wall_seconds": float(meta.get("wall_seconds") or 0.0)}


def _add(*costs: Mapping) -> dict:
    return {k: sum(c[k] for c in costs) for k in ("samples_seen", "flops", "wall_seconds")}


def arm_costs(metas: Mapping[str, Mapping]) -> dict[str, dict]:
    """{arm: {samples_seen, flops, wall_seconds}} from {run name: meta} (seed, expert_XX, dense)."""
    if "seed" not in metas:
        raise ValueError("arm costs need the seed run's meta")
    seed = _cost(metas["seed"])
    experts = sorted(name for name in metas if name.startswith("expert_"))
    out = {"seed": seed}
    for name in experts:
        out[name] = _add(seed, _cost(metas[name]))
    if experts:
        all_experts = _add(seed, *(_cost(metas[name]) for name in experts))
        out.update({arm: dict(all_experts) for arm in ENSEMBLE_ARMS})
    if "dense" in metas:
        out["dense"] = _add(seed, _cost(metas["dense"]))
    return out


def load_metas(paths: Iterable[str | Path]) -> dict[str, dict]:
    metas = {}
    for path in paths:
        meta = json.loads(Path(path).read_text())
        metas[meta["name"]] = meta
    return metas
