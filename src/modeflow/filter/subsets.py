"""Named uid subsets (config `filter.subsets`): validation, inputs and multiset algebra (the .npy files:
modeflow.common.subset_file).

A subset is a sorted np.dtype("u8,u8") array, DataComp's format; a uid listed k times is written
k times by reshard (upsampling), so the set operations count multiplicities:
union keeps the largest count, intersection the smallest, and difference drops every copy of a
uid present in any later operand (a filter removes a sample, not one of its copies).
"""

from __future__ import annotations

import numpy as np

from modeflow.common.errors import ConfigError
from modeflow.common.uids import UID_DTYPE

SET_KINDS = ("intersection", "union", "difference")
POOL_KINDS = ("no_filter", "basic_filter", "dedup_exact", "dedup_near")
SEED_SCORER = "seed"  # clip_score's default scorer: the MoDE seed model this workflow trains

# The files each kind is computed from, by the subset job's input name: what subset_inputs wires in
# and what build_subset_from_inputs reads. attributes: the pool's per-chunk attribute tables;
# vectors, uids: the caption embeddings and their uid tables; file: the user's DataComp .npy;
# scores: the per-chunk clip scores; subsets: the subsets a set kind combines (its `of`).
KIND_INPUTS = {
    "no_filter": ("attributes",),
    "basic_filter": ("attributes",),
    "dedup_exact": ("attributes",),
    "dedup_near": ("attributes", "vectors", "uids"),
    "subset_file": ("attributes", "file"),
    "clip_score": ("attributes", "scores"),
    **{kind: ("subsets",) for kind in SET_KINDS},
}


def _key(name: str, field: str | None = None) -> str:
    return f"filter.subsets.{name}" + (f".{field}" if field else "")


def check_subsets(filter_cfg: dict) -> None:
    """Every subset's options fit its kind, `of` names exist without cycles, `use` is a subset."""
    subsets = filter_cfg.get("subsets") or {}
    if not subsets:
        raise ConfigError("filter.subsets: no subset defined")
    for name, spec in subsets.items():
        kind = spec["kind"]
        if kind in SET_KINDS:
            of = spec.get("of")
            if not of:
                raise ConfigError(f"{_key(name, 'of')}: {kind} needs the names of the subsets it combines")
            if kind == "difference" and len(of) < 2:
                raise ConfigError(f"{_key(name, 'of')}: difference needs at least two subsets (first minus the rest)")
            unknown = [o for o in of if o not in subsets]
            if unknown:
                raise ConfigError(f"{_key(name, 'of')}: unknown subset(s) {unknown}; defined: {sorted(subsets)}")
        elif "of" in spec:
            raise ConfigError(f"{_key(name, 'of')}: only {'/'.join(SET_KINDS)} take `of` (kind is {kind})")
        if kind == "subset_file" and not spec.get("path"):
            raise ConfigError(f"{_key(name, 'path')}: subset_file needs the path of a DataComp .npy")
        if kind == "dedup_near":
            t = spec.get("threshold")
            if t is None or not 0 < t <= 1:
                raise ConfigError(f"{_key(name, 'threshold')}: dedup_near needs a cosine threshold in (0, 1], got {t!r}")
        if kind == "clip_score":
            if ("threshold" in spec) == ("fraction" in spec):
                raise ConfigError(f"{_key(name)}: clip_score needs exactly one of `threshold` (cosine) or "
                                  "`fraction` (keep the top fraction of the pool)")
            if "fraction" in spec and not 0 < spec["fraction"] <= 1:
                raise ConfigError(f"{_key(name, 'fraction')}: must lie in (0, 1], got {spec['fraction']!r}")
            if spec.get("checkpoint", SEED_SCORER) != SEED_SCORER and not spec.get("model"):
                raise ConfigError(f"{_key(name, 'model')}: a clip_score checkpoint other than the seed needs "
                                  "the open_clip model name it was trained with")
    for name in subsets:
        _check_acyclic(subsets, name, [])
    use = filter_cfg.get("use")
    if use not in subsets:
        raise ConfigError(f"filter.use: {use!r} is not a subset; defined: {sorted(subsets)}")


def _check_acyclic(subsets: dict, name: str, path: list[str]) -> None:
    if name in path:
        cycle = " -> ".join(path[path.index(name):] + [name])
        raise ConfigError(f"{_key(path[-1], 'of')}: subsets depend on each other in a cycle: {cycle}")
    for dep in subsets[name].get("of") or ():
        _check_acyclic(subsets, dep, path + [name])


def depends_on_seed_scores(subsets_cfg: dict, name: str) -> bool:
    """Whether subset `name` needs clip scores from the seed model (so the seed cannot train on it)."""
    spec = subsets_cfg[name]
    if spec["kind"] == "clip_score" and spec.get("checkpoint", SEED_SCORER) == SEED_SCORER:
        return True
    return any(depends_on_seed_scores(subsets_cfg, dep) for dep in spec.get("of") or ())


def subset_dependencies(subsets_cfg: dict, name: str) -> list[str]:
    """The subsets `name` is computed from (its `of`, empty for the other kinds)."""
    if name not in subsets_cfg:
        raise ConfigError(f"filter.subsets: no subset named {name!r}; defined: {sorted(subsets_cfg)}")
    return list(subsets_cfg[name].get("of") or ())


def combine(kind: str, operands: list[np.ndarray]) -> np.ndarray:
    """intersection / union / difference of sorted u8,u8 multisets (see the module docstring)."""
    if kind not in SET_KINDS:
        raise ValueError(f"not a set operation: {kind}")
    if not operands:
        return np.empty(0, UID_DTYPE)
    uniq, inverse = np.unique(np.concatenate(operands), return_inverse=True)
    table = np.zeros((len(operands), len(uniq)), dtype=np.int64)
    start = 0
    for i, op in enumerate(operands):
        np.add.at(table[i], inverse[start:start + len(op)], 1)
        start += len(op)
    if kind == "union":
        n = table.max(axis=0)
    elif kind == "intersection":
        n = table.min(axis=0)
    else:
        n = np.where(table[1:].sum(axis=0) > 0, 0, table[0])
    return np.repeat(uniq, n)


def restrict_to_pool(pairs: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `pairs` whose uid is in the sorted `pool`, the distinct uids that are not)."""
    uniq = np.unique(pairs)
    present = np.isin(uniq, pool)
    return pairs[np.isin(pairs, uniq[present])], uniq[~present]


def subset_inputs(subsets_cfg: dict, name: str, *, attributes: list[str], vectors: list[str],
                  uid_tables: list[str], subset_path, clip_scores=None) -> dict[str, list[str] | str]:
    """The files subset `name` is computed from (a Snakemake input function's answer), by
    KIND_INPUTS: `subset_path(dep)` of each subset it combines, `clip_scores(name)` its scores."""
    spec = subsets_cfg[name]
    deps = subset_dependencies(subsets_cfg, name)
    files = {
        "attributes": lambda: list(attributes),
        "vectors": lambda: list(vectors),
        "uids": lambda: list(uid_tables),
        "file": lambda: spec["path"],
        "scores": lambda: list(clip_scores(name)),
        "subsets": lambda: [subset_path(d) for d in deps],
    }
    return {need: files[need]() for need in KIND_INPUTS[spec["kind"]]}
