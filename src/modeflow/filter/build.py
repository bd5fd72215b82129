"""Build one named subset (config `filter.subsets.<name>`) -> (sorted u8,u8 uids, stats).

Each kind reads the files modeflow.filter.subsets.KIND_INPUTS names for it. A subset that keeps
nothing is an error naming what removed everything: an empty subset must never reach training.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeflow.filter.clip_score import clip_score_keep
from modeflow.common.errors import InputDataError
from modeflow.filter.rules import basic_filter_masks, dedup_exact_mask, dedup_near_mask, pool_order
from modeflow.common.subset_file import read_subset_file
from modeflow.filter.subsets import KIND_INPUTS, POOL_KINDS, SEED_SCORER, SET_KINDS, combine, restrict_to_pool
from modeflow.common.uids import uids_to_pairs


def load_attributes(paths: Sequence[str], columns: Sequence[str] | None = None) -> pa.Table:
    """The pool's attribute tables, chunk after chunk; a uid twice in the pool is an error."""
    cols = None if columns is None else list(dict.fromkeys(["uid", "shard", *columns]))
    table = pa.concat_tables([pq.read_table(p, columns=cols) for p in paths])
    uids = table["uid"].to_numpy(zero_copy_only=False)
    uniq, n = np.unique(uids, return_counts=True)
    if np.any(n > 1):
        dup = uniq[n > 1][0]
        shards = table.filter(pc.equal(table["uid"], dup))["shard"].to_pylist()
        raise InputDataError(f"uid {dup} appears {int(n[n > 1][0])} times in the pool (shards {shards}); "
                             f"attributes: {list(paths)}")
    return table


def load_embeddings(vector_paths: Sequence[str], uid_paths: Sequence[str], uids: Sequence[str]) -> np.ndarray:
    """Caption embeddings of all chunks, checked to be row for row the attribute rows `uids`."""
    parts = [np.load(p, mmap_mode="r") for p in vector_paths]
    emb_uids = [u for p in uid_paths for u in pq.read_table(p, columns=["uid"])["uid"].to_pylist()]
    if emb_uids != list(uids) or sum(len(v) for v in parts) != len(uids):
        raise InputDataError(f"embeddings {list(vector_paths)} are not aligned with the filter attributes "
                             f"({sum(len(v) for v in parts)} vectors, {len(uids)} attribute rows); rerun filter_attributes")
    return np.concatenate([np.asarray(v, dtype=np.float32) for v in parts])


def _pool_subset(name: str, spec: dict, basic: dict, attributes: pa.Table,
                 vectors: np.ndarray | None) -> tuple[np.ndarray, dict]:
    kind, n = spec["kind"], len(attributes)
    removed: dict[str, int] = {}
    if kind == "no_filter":
        keep = np.ones(n, dtype=bool)
    elif kind == "basic_filter":
        masks = basic_filter_masks(attributes, basic)
        removed = {rule: int((~m).sum()) for rule, m in masks.items()}
        keep = np.logical_and.reduce(list(masks.values())) if n else np.ones(0, dtype=bool)
        if n and not keep.any():
            culprits = [r for r, m in masks.items() if not m.any()] or ["the rules together"]
            raise InputDataError(f"filter.subsets.{name} (basic_filter) keeps none of {n} samples: removed by "
                                 f"{', '.join(culprits)} (removed per rule: {removed}; thresholds filter.basic: {basic})")
    elif kind == "dedup_exact":
        keep = dedup_exact_mask(attributes)
        removed = {"duplicate_sha256": int(n - keep.sum())}
    elif kind == "dedup_near":
        if vectors is None:
            raise ValueError("dedup_near needs the caption embeddings")
        keep = dedup_near_mask(vectors, pool_order(attributes), spec["threshold"])
        removed = {"near_duplicate_caption": int(n - keep.sum())}
    else:
        raise ValueError(f"not a pool kind: {kind}")
    if n == 0:
        raise InputDataError(f"filter.subsets.{name} ({kind}) is empty: the pool has no successfully downloaded sample")
    uids = np.asarray(attributes["uid"].to_pylist(), dtype=object)[keep]
    return uids_to_pairs(uids), {"rows_in": n, "rows_kept": int(keep.sum()), "removed_by_rule": removed}


def _file_subset(name: str, spec: dict, pool: np.ndarray) -> tuple[np.ndarray, dict]:
    path = spec["path"]
    listed = read_subset_file(path)
    kept, absent = restrict_to_pool(listed, pool)
    stats = {"rows_in": int(len(listed)), "rows_kept": int(len(kept)), "path": str(path),
             "distinct_uids": int(len(np.unique(listed))),
             "removed_by_rule": {"absent_from_pool": int(len(listed) - len(kept))},
             "absent_from_pool": int(len(absent)),
             "absent_examples": [f"{int(h):016x}{int(lo):016x}" for h, lo in absent[:5].tolist()]}
    if len(kept) == 0:
        raise InputDataError(f"filter.subsets.{name}: none of the {len(listed)} uids of {path} is in the pool "
                             f"(absent_from_pool removed everything)")
    return kept, stats


def _clip_subset(name: str, spec: dict, attributes: pa.Table, scores: pa.Table) -> tuple[np.ndarray, dict]:
    if scores.num_rows != attributes.num_rows or not scores["uid"].equals(attributes["uid"]):
        raise InputDataError(f"filter.subsets.{name}: the clip scores do not cover the pool's samples in order "
                             f"({scores.num_rows} scores, {attributes.num_rows} samples); rerun the clip_score jobs")
    keep, threshold = clip_score_keep(scores["clip_score"].to_numpy(), threshold=spec.get("threshold"),
                                      fraction=spec.get("fraction"), key=f"filter.subsets.{name}")
    if not keep.any():
        raise InputDataError(f"filter.subsets.{name} (clip_score) keeps none of {len(keep)} samples at threshold "
                             f"{threshold:.4f} (scores range {float(np.min(scores['clip_score'])):.4f}.."
                             f"{float(np.max(scores['clip_score'])):.4f})")
    uids = np.asarray(attributes["uid"].to_pylist(), dtype=object)[keep]
    return uids_to_pairs(uids), {"rows_in": len(keep), "rows_kept": int(keep.sum()), "threshold": threshold,
                                 "checkpoint": spec.get("checkpoint", SEED_SCORER),
                                 "removed_by_rule": {"clip_score_below_threshold": int((~keep).sum())}}


def _set_subset(name: str, spec: dict, operands: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    kind, of = spec["kind"], spec["of"]
    result = operands[of[0]]
    changes: dict[str, int] = {}
    for other in of[1:]:
        nxt = combine(kind, [result, operands[other]])
        changes[other] = int(len(nxt) - len(result))
        result = nxt
    stats = {"rows_in": int(len(operands[of[0]])), "rows_kept": int(len(result)),
             "operands": {o: int(len(operands[o])) for o in of}}
    if kind == "union":
        stats["removed_by_rule"], stats["added_by"] = {}, changes
    else:
        stats["removed_by_rule"] = {o: -c for o, c in changes.items()}
    if len(result) == 0:
        culprit = next((o for o, c in changes.items() if len(operands[o]) and c), of[-1])
        raise InputDataError(f"filter.subsets.{name} ({kind} of {of}) is empty: combining with {culprit!r} "
                             f"removed everything (sizes {stats['operands']})")
    return result, stats


def build_subset(name: str, spec: dict, *, basic: dict | None = None, attributes: pa.Table | None = None,
                 vectors: np.ndarray | None = None,
                 operands: dict[str, np.ndarray] | None = None,
                 scores: pa.Table | None = None) -> tuple[np.ndarray, dict]:
    """The subset `name` as DataComp's sorted u8,u8 array (multiplicity = upsampling) and its stats
    {kind, rows_in, rows_kept, removed_by_rule, ...}. Pool and subset_file kinds need `attributes`
    (dedup_near also `vectors`, aligned with it; clip_score `scores`, {uid, clip_score} aligned
    with it); set kinds need `operands` by name."""
    kind = spec["kind"]
    if kind in POOL_KINDS:
        pairs, stats = _pool_subset(name, spec, basic or {}, attributes, vectors)
    elif kind == "clip_score":
        pairs, stats = _clip_subset(name, spec, attributes, scores)
    elif kind == "subset_file":
        pairs, stats = _file_subset(name, spec, uids_to_pairs(attributes["uid"].to_pylist()))
    elif kind in SET_KINDS:
        pairs, stats = _set_subset(name, spec, operands or {})
    else:
        raise ValueError(f"unknown subset kind {kind}")
    return pairs, {"name": name, "kind": kind, **stats}


def build_subset_from_inputs(name: str, spec: dict, inputs: Mapping[str, Sequence[str] | str], *,
                             basic: dict | None = None) -> tuple[np.ndarray, dict]:
    """build_subset on the subset job's files, keyed as subset_inputs keys them (KIND_INPUTS).
    subset_file's `file` input is spec["path"] itself, which build_subset reads."""
    needs = KIND_INPUTS[spec["kind"]]
    attributes = load_attributes(inputs["attributes"]) if "attributes" in needs else None
    vectors = (load_embeddings(inputs["vectors"], inputs["uids"], attributes["uid"].to_pylist())
               if "vectors" in needs else None)
    scores = pa.concat_tables(pq.read_table(p) for p in inputs["scores"]) if "scores" in needs else None
    operands = ({dep: read_subset_file(path) for dep, path in zip(spec["of"], inputs["subsets"])}
                if "subsets" in needs else None)
    return build_subset(name, spec, basic=basic, attributes=attributes, vectors=vectors, operands=operands,
                        scores=scores)
