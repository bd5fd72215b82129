"""Config keys that name other keys' values: each name must exist and fit where it is used.

The schema checks each key on its own; these checks need two keys at once (filter.use and
train.seed_subset name subsets, a set subset's `of` names others, evaluate.tasks: demo needs the
demo pool), so they run after validation and before anything is planned.
"""

from __future__ import annotations

from modeflow.common.errors import ConfigError
from modeflow.filter.subsets import check_subsets, depends_on_seed_scores


def seed_subset(cfg: dict) -> str:
    """The subset the seed model trains on: train.seed_subset, else filter.use."""
    return cfg["train"]["seed_subset"] or cfg["filter"]["use"]


def check_references(cfg: dict) -> None:
    """Raise ConfigError naming the key whose name refers to nothing, or to something unfit."""
    # each `of` names a subset, no cycles, filter.use is a subset, metadata baselines on a CommonPool
    check_subsets(cfg["filter"], cfg["pool"]["source"])
    subsets = cfg["filter"]["subsets"]
    name = seed_subset(cfg)
    if name not in subsets:
        raise ConfigError(f"train.seed_subset: {name!r} is not a subset; defined: {sorted(subsets)}")
    if depends_on_seed_scores(subsets, name):
        raise ConfigError(
            f"train.seed_subset: {name!r} needs clip scores from the seed model itself; set "
            "train.seed_subset to a subset without a seed-scored clip_score (e.g. the basic filters)"
        )
    if cfg["evaluate"]["tasks"] == "demo" and cfg["pool"]["source"] != "demo":
        raise ConfigError("evaluate.tasks: 'demo' needs pool.source: demo; list task directories instead")
