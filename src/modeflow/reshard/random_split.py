"""The random-split control (MoDE's ablation, docs/method.md §4): the same kept data as the experts,
split at random into parts of the clusters' sizes, so that n experts trained on the parts differ
from MoDE's only in how the data was split.

`random_partition` is the split itself: a pure function of the kept samples' uids, the part sizes
and the seed (not of the clustering, the row order or the chunking). `write_random_assignments`
applies it to a whole pool, one job for all chunks (the partition is global: a per-chunk split
would copy any correlation between chunks and clusters), and writes per chunk an assignment table
in the layout of cluster/assign/ (uid, expert), which phase 1 of the reshard reads as it reads the
clusters' (with the same ooc ratio and seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.atomic import atomic_path, write_json
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_name
from modeflow.common.subset_file import read_subset_file
from modeflow.common.uids import uid_pairs
from modeflow.reshard.membership import multiplicity, uid_hash
from modeflow.reshard.tables import read_columns

# hash salt of the split (ooc draws use the expert index as theirs: never this large)
SPLIT_SALT = 0x5EED5B1170000


def random_partition(pairs: np.ndarray, sizes: Sequence[int], seed: int) -> np.ndarray:
    """Part label of each uid (rows of a "u8,u8" array): exactly sizes[j] uids get label j.

    The uids are ordered by a seeded hash of each (ties by the uid), and the first sizes[0] go to
    part 0, the next sizes[1] to part 1, ...: a uniformly random partition with those sizes, the same
    for the same uids whatever their order, and independent of any clustering."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any():
        raise ValueError(f"part sizes must be non-negative integers, got {sizes.tolist()}")
    if int(sizes.sum()) != len(pairs):
        raise ValueError(f"part sizes add up to {int(sizes.sum())} but there are {len(pairs)} samples")
    order = np.lexsort((pairs["f1"], pairs["f0"], uid_hash(seed, pairs, SPLIT_SALT)))
    labels = np.empty(len(pairs), np.int64)
    labels[order] = np.repeat(np.arange(len(sizes)), sizes)
    return labels


def write_random_assignments(embed_paths: Sequence[str | Path], assign_paths: Sequence[str | Path],
                             subset_path: str | Path, out_paths: Sequence[str | Path],
                             out_json: str | Path, *, num_experts: int, seed: int) -> dict:
    """Randomly re-split the kept samples (subset multiplicity > 0) of every chunk into
    `num_experts` parts of the clusters' sizes (kept samples per expert in the assignment tables);
    write one (uid, expert) parquet per chunk, aligned with its embed table, and a json of the sizes.

    Rows the subset does not keep get expert 0; phase 1 of the reshard drops them like any row
    outside the subset."""
    if not len(embed_paths) == len(assign_paths) == len(out_paths):
        raise ValueError("one embed table, one assignment table and one output per chunk")
    subset = read_subset_file(subset_path)
    chunks = []  # (uid column, pairs, kept mask, cluster expert) per chunk
    for embed_path, assign_path in zip(embed_paths, assign_paths):
        uids = read_columns(embed_path, ["uid"])["uid"]
        asg = read_columns(assign_path, ["uid", "expert"])
        if len(uids) != asg.num_rows or not uids.equals(asg["uid"]):
            raise InputDataError(f"{assign_path}: rows do not match {embed_path} (same uids, same order expected)")
        expert = asg["expert"].to_numpy().astype(np.int64)
        if len(expert) and (expert.min() < 0 or expert.max() >= num_experts):
            raise InputDataError(f"{assign_path}: expert ids must lie in 0..{num_experts - 1}")
        pairs = uid_pairs(uids, str(embed_path))
        chunks.append((uids, pairs, multiplicity(subset, pairs) > 0, expert))
    kept_pairs = np.concatenate([pairs[kept] for _, pairs, kept, _ in chunks]) if chunks else np.zeros(0, "u8,u8")
    cluster = np.concatenate([expert[kept] for _, _, kept, expert in chunks]) if chunks else np.zeros(0, np.int64)
    sizes = np.bincount(cluster, minlength=num_experts)
    labels = random_partition(kept_pairs, sizes, seed)
    start = 0
    for (uids, _, kept, _), out in zip(chunks, out_paths):
        chunk_labels = np.zeros(len(kept), np.int64)
        chunk_labels[kept] = labels[start:start + int(kept.sum())]
        start += int(kept.sum())
        with atomic_path(out, suffix=".parquet") as tmp:
            pq.write_table(pa.table({"uid": uids, "expert": pa.array(chunk_labels, pa.int64())}), tmp)
    overlap = np.zeros((num_experts, num_experts), np.int64)  # cluster expert x random part
    np.add.at(overlap, (cluster, labels), 1)
    stats = {
        "seed": seed, "kept_samples": int(len(kept_pairs)),
        "sizes": {expert_name(j): int(n) for j, n in enumerate(sizes)},  # the clusters' and the parts'
        "cluster_by_part": overlap.tolist(),  # rows: cluster expert, columns: random part
        "same_as_cluster": round(float(np.trace(overlap) / max(1, len(kept_pairs))), 4),
    }
    write_json(out_json, stats)
    return stats
