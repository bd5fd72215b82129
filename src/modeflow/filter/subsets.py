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
DATACOMP = "datacomp"  # pool.source of a CommonPool, whose metadata the DataComp baselines read
# DataComp's baselines that only a CommonPool's metadata can compute (modeflow.filter.datacomp_baselines)
METADATA_ONLY_KINDS = ("laion2b", "text_based", "image_based", "image_based_clip_score")
# on a CommonPool these are computed from its metadata too, as DataComp's apply_filter.py does
# (clip_score only with `arch`: the precomputed score columns)
METADATA_KINDS = ("no_filter", "basic_filter", "clip_score", *METADATA_ONLY_KINDS)
# the spec fields that name files a metadata kind reads besides the metadata
METADATA_ASSETS = {"text_based": ("synsets",), "image_based": ("centroids", "targets"),
                   "image_based_clip_score": ("centroids", "targets")}

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
    # a CommonPool's metadata parquets (+ npz for image_based); see from_metadata and subset_inputs
    **{kind: ("metadata",) for kind in METADATA_ONLY_KINDS},
}


def from_metadata(spec: dict, pool_source: str) -> bool:
    """Whether the subset is computed from a CommonPool's metadata (modeflow.filter.datacomp_baselines)
    rather than from the pool's per-chunk tables."""
    if pool_source != DATACOMP or spec["kind"] not in METADATA_KINDS:
        return False
    return spec["kind"] != "clip_score" or "arch" in spec


def _key(name: str, field: str | None = None) -> str:
    return f"filter.subsets.{name}" + (f".{field}" if field else "")


def check_subsets(filter_cfg: dict, pool_source: str | None = None) -> None:
    """Every subset's options fit its kind, `of` names exist without cycles, `use` is a subset;
    the metadata baselines need a CommonPool (pool_source datacomp)."""
    subsets = filter_cfg.get("subsets") or {}
    if not subsets:
        raise ConfigError("filter.subsets: no subset defined")
    for name, spec in subsets.items():
        kind = spec["kind"]
        _check_metadata_kind(name, spec, pool_source)
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
        if kind in ("clip_score", "image_based_clip_score"):
            if ("threshold" in spec) == ("fraction" in spec):
                raise ConfigError(f"{_key(name)}: {kind} needs exactly one of `threshold` (cosine) or "
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


def _check_metadata_kind(name: str, spec: dict, pool_source: str | None) -> None:
    """The DataComp metadata baselines' options (see METADATA_KINDS)."""
    kind = spec["kind"]
    uses_metadata = kind in METADATA_ONLY_KINDS or (kind == "clip_score" and "arch" in spec)
    if uses_metadata and pool_source is not None and pool_source != DATACOMP:
        what = "clip_score with `arch` (a precomputed score column)" if kind == "clip_score" else kind
        raise ConfigError(f"{_key(name, 'kind')}: {what} is computed from DataComp CommonPool metadata, so it "
                          f"needs pool.source: datacomp (pool.source is {pool_source!r})")
    if "arch" in spec and kind not in ("clip_score", "image_based_clip_score"):
        raise ConfigError(f"{_key(name, 'arch')}: only clip_score and image_based_clip_score take `arch` (kind is {kind})")
    if kind == "image_based_clip_score" and "arch" not in spec:
        raise ConfigError(f"{_key(name, 'arch')}: image_based_clip_score needs the score column's arch (b32 or l14)")
    if kind == "clip_score" and "arch" in spec and ({"checkpoint", "model"} & set(spec)):
        raise ConfigError(f"{_key(name)}: a clip_score takes either `arch` (the CommonPool's precomputed scores) "
                          "or a scorer (`checkpoint`, `model`), not both")
    for field in METADATA_ASSETS.get(kind, ()):
        if not spec.get(field):
            what = {"synsets": "the ImageNet-21k synset id list file",
                    "centroids": "the pool centroids of the L/14 image features (.npy)",
                    "targets": "the ImageNet-1k L/14 image features (.npy)"}[field]
            raise ConfigError(f"{_key(name, field)}: {kind} needs {what}")
    file_fields = {"synsets", "wordnet", "centroids", "targets", "language_model"} & set(spec)
    allowed = set(METADATA_ASSETS.get(kind, ())) | ({"wordnet"} if kind == "text_based" else set()) \
        | ({"language_model"} if kind in ("basic_filter", "text_based", "image_based", "image_based_clip_score") else set())
    for field in sorted(file_fields - allowed):
        raise ConfigError(f"{_key(name, field)}: kind {kind} does not take `{field}`")
    if "language_model" in spec and kind == "basic_filter" and pool_source not in (None, DATACOMP):
        raise ConfigError(f"{_key(name, 'language_model')}: only a CommonPool's basic_filter (pool.source: datacomp) "
                          "takes a language model file")


def _check_acyclic(subsets: dict, name: str, path: list[str]) -> None:
    if name in path:
        cycle = " -> ".join(path[path.index(name):] + [name])
        raise ConfigError(f"{_key(path[-1], 'of')}: subsets depend on each other in a cycle: {cycle}")
    for dep in subsets[name].get("of") or ():
        _check_acyclic(subsets, dep, path + [name])


def depends_on_seed_scores(subsets_cfg: dict, name: str) -> bool:
    """Whether subset `name` needs clip scores from the seed model (so the seed cannot train on it)."""
    spec = subsets_cfg[name]
    if spec["kind"] == "clip_score" and "arch" not in spec and spec.get("checkpoint", SEED_SCORER) == SEED_SCORER:
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
                  uid_tables: list[str], subset_path, clip_scores=None, pool_source: str | None = None,
                  metadata_files=None) -> dict[str, list[str] | str]:
    """The files subset `name` is computed from (a Snakemake input function's answer), by
    KIND_INPUTS: `subset_path(dep)` of each subset it combines, `clip_scores(name)` its scores; a
    CommonPool's metadata baseline (from_metadata) reads `metadata_files(features)` (the metadata
    parquets, with the npz files when `features`) and the spec's asset files."""
    spec = subsets_cfg[name]
    if from_metadata(spec, pool_source):
        fields = METADATA_ASSETS.get(spec["kind"], ())
        return {"metadata": list(metadata_files(spec["kind"].startswith("image_based"))),
                **{field: spec[field] for field in fields}}
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
