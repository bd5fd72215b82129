"""Phase 1 of the per-expert reshard, one job per chunk: which kept sample goes to which expert,
and where its bytes lie.

Membership is decided from uid tables alone (embed parquet × assignment × subset); of the tars only
the headers are read, to record each kept sample's byte range and each member header's checksum
base. The index parquet holds each expert's rows in row groups of their own, so that phase 2
(modeflow.reshard.write, one job per expert) reads just its own.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.atomic import atomic_path, write_json
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_name
from modeflow.common.subset_file import read_subset_file
from modeflow.common.uids import uid_pairs
from modeflow.reshard.membership import multiplicity, ooc_draw
from modeflow.reshard.tables import MEMBER_COLUMNS, concat_ranges, read_columns
from modeflow.wds.shard_name import shard_of_tar
from modeflow.wds.tarindex import index_tar


def _locate(shard_column: pa.ChunkedArray, key_column: pa.ChunkedArray, tar_paths, embed_path) -> dict:
    """Byte layout of every (shard, key) sample of the chunk in its tars (block offsets); tars as
    ids into the returned list "tars"."""
    by_shard = {shard_of_tar(p): str(p) for p in tar_paths}
    shards = shard_column.combine_chunks().dictionary_encode()
    shard_names, shard_ids = shards.dictionary.to_pylist(), shards.indices.to_numpy()
    unknown = sorted(set(shard_names) - set(by_shard))
    if unknown:
        raise InputDataError(f"{embed_path}: rows name shard(s) {unknown[:5]} that are not among this chunk's tars")
    rows_key = key_column.combine_chunks()
    n = len(shard_ids)
    start, end, key_len = (np.zeros(n, np.int64) for _ in range(3))
    tar_of = np.zeros(n, np.int64)
    n_members = np.zeros(n, np.int64)
    member_parts: list[tuple[np.ndarray, dict]] = []  # (rows, {member column: its members' values}) per tar
    not_embedded = 0
    for tar_id, (shard, path) in enumerate(by_shard.items()):
        index = index_tar(path)  # every tar of the chunk, so a corrupt one is never skipped
        rows = np.flatnonzero(shard_ids == shard_names.index(shard)) if shard in shard_names else np.zeros(0, np.int64)
        row_keys = rows_key.take(pa.array(rows)).to_pylist()
        keys = np.asarray(row_keys, dtype=index.sample_keys.dtype) if len(rows) else np.zeros(0, index.sample_keys.dtype)
        order = np.argsort(index.sample_keys)
        pos = np.searchsorted(index.sample_keys, keys, sorter=order)
        sample = order[np.minimum(pos, max(len(order) - 1, 0))] if len(order) else pos
        found = (pos < len(order)) & (index.sample_keys[sample] == keys if len(order) else False)
        if not np.all(found):
            raise InputDataError(f"{embed_path}: sample {row_keys[int(np.argmax(~found))]!r} of shard "
                                 f"{shard} is not in {path} (embed table and tars out of step)")
        not_embedded += len(index.sample_keys) - len(np.unique(sample))
        first_member = np.searchsorted(index.member_sample, np.arange(len(index.sample_keys)))
        count = np.diff(np.append(first_member, len(index.member_sample)))
        start[rows] = index.sample_start[sample]
        end[rows] = index.sample_end[sample]
        key_len[rows] = index.sample_key_len[sample]
        tar_of[rows] = tar_id
        n_members[rows] = count[sample]
        flat = concat_ranges(first_member[sample], count[sample])
        member_parts.append((rows, {"member_blocks": index.member_block[flat] - np.repeat(start[rows], count[sample]),
                                    "member_chk_base": index.member_chk_base[flat],
                                    "member_chk_field": index.member_chk_field[flat]}))
    # the per-member columns as list arrays aligned with the rows
    offsets = np.concatenate([[0], np.cumsum(n_members)])
    members = {name: np.zeros(offsets[-1], dtype) for name, dtype in MEMBER_COLUMNS.items()}
    for rows, values in member_parts:
        at = concat_ranges(offsets[rows], n_members[rows])
        for name, v in values.items():
            members[name][at] = v
    list_offsets = pa.array(offsets)
    return {"tar": tar_of, "tars": list(by_shard.values()), "start_block": start, "end_block": end, "key_len": key_len,
            "members": {name: pa.ListArray.from_arrays(list_offsets, pa.array(v)) for name, v in members.items()},
            "not_embedded": int(not_embedded)}


def _write_index(path, table: pa.Table, rows_per_expert: np.ndarray) -> None:
    """The index parquet, its rows grouped by expert, one or more row groups per expert: an
    expert's job then reads just its own row groups (modeflow.reshard.write)."""
    # dictionary pages only where values repeat: trying them on uids and offsets cost ~40% of the write
    with atomic_path(path, suffix=".parquet") as tmp, \
            pq.ParquetWriter(tmp, table.schema, use_dictionary=["tar"]) as writer:
        start = 0
        for rows in rows_per_expert.tolist():
            if rows:
                writer.write_table(table.slice(start, rows))
            start += rows


def index_chunk(embed_path, assign_path, subset_path, tar_paths, out_parquet, out_json, *,
                num_experts: int, ooc_ratio: float, seed: int) -> dict:
    """Decide which kept sample goes to which expert (in-cluster and out-of-cluster copies) and
    where its bytes are; write the index parquet and its stats json. Returns the stats.

    assign_path None pools the subset instead: every kept sample goes to "expert" 0, no ooc copies
    (num_experts must be 1) — the all-data shards the seed model and the dense baseline train on."""
    emb = read_columns(embed_path, ["uid", "shard", "key"])
    pairs = uid_pairs(emb["uid"], str(embed_path))
    if assign_path is None:
        if num_experts != 1 or ooc_ratio:
            raise ValueError("a pooled reshard has one output and no out-of-cluster copies")
        expert = np.zeros(emb.num_rows, np.int64)
    else:
        asg = read_columns(assign_path, ["uid", "expert"])
        if emb.num_rows != asg.num_rows or not emb["uid"].equals(asg["uid"]):
            raise InputDataError(f"{assign_path}: rows do not match {embed_path} (same uids, same order expected)")
        expert = asg["expert"].to_numpy().astype(np.int64)
    if len(expert) and (expert.min() < 0 or expert.max() >= num_experts):
        raise InputDataError(f"{assign_path}: expert ids must lie in 0..{num_experts - 1}")
    mult = multiplicity(read_subset_file(subset_path), pairs)
    kept = np.flatnonzero(mult > 0)

    # one entry per (sample, expert): its own expert, plus each other expert that draws it as ooc
    entry_row, entry_expert, entry_ooc = [kept], [expert[kept]], [np.zeros(len(kept), bool)]
    for j in range(num_experts):
        take = kept[(expert[kept] != j) & (ooc_draw(seed, pairs[kept], j) < ooc_ratio)]
        entry_row.append(take)
        entry_expert.append(np.full(len(take), j))
        entry_ooc.append(np.ones(len(take), bool))
    row, exp, ooc = (np.concatenate(a) for a in (entry_row, entry_expert, entry_ooc))
    order = np.lexsort((ooc, row, exp))  # per expert: pool order, so outputs follow the input
    row, exp, ooc = row[order], exp[order], ooc[order]

    where = _locate(emb["shard"], emb["key"], tar_paths, embed_path)
    at = pa.array(row)
    table = pa.table({
        "uid": emb["uid"].take(at),
        "uid_hi": pa.array(pairs["f0"][row]),  # numeric twin of uid: phase 2 never parses strings
        "uid_lo": pa.array(pairs["f1"][row]),
        "expert": pa.array(exp, pa.int32()),
        "ooc": pa.array(ooc),
        "copies": pa.array(mult[row], pa.int32()),
        "tar": pa.DictionaryArray.from_arrays(pa.array(where["tar"][row], pa.int32()), pa.array(where["tars"], pa.string())),
        "start_block": pa.array(where["start_block"][row]),
        "end_block": pa.array(where["end_block"][row]),
        "key_len": pa.array(where["key_len"][row], pa.int32()),
        **{name: column.take(at) for name, column in where["members"].items()},
    })
    _write_index(out_parquet, table, np.bincount(exp, minlength=num_experts))
    stats = {
        "pool_samples": int(emb.num_rows),
        "kept_samples": int(len(kept)),
        "kept_entries": int(mult[kept].sum()),
        "in_cluster": {expert_name(j): int(mult[row[(exp == j) & ~ooc]].sum()) for j in range(num_experts)},
        "ooc": {expert_name(j): int(mult[row[(exp == j) & ooc]].sum()) for j in range(num_experts)},
        "tar_samples_not_embedded": where["not_embedded"],
        "tars": [str(p) for p in tar_paths],
    }
    write_json(out_json, stats)
    return stats
