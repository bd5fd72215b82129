"""Phase 2 of the per-expert reshard, one job per expert: its rows of the phase-1 index
(modeflow.reshard.index) -> one DataComp-layout shard directory.

The expert's row groups give the byte ranges of its samples in the input tars; they are copied
into exact `shard_size` tars, members renamed to a running key. Samples are copied as raw tar
blocks, so the data is written once (why: modeflow.wds.tarindex and bench/README.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modeflow.common.atomic import atomic_dir, json_text
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.names import expert_name
from modeflow.common.subset_file import read_subset_file
from modeflow.common.uids import UID_DTYPE, sort_pairs, uid_keys
from modeflow.reshard.membership import multiplicity
from modeflow.reshard.tables import MEMBER_COLUMNS, concat_ranges, open_parquet, read_columns
from modeflow.wds.tarformat import BLOCK, END_OF_ARCHIVE
from modeflow.wds.tarrename import digit_keys, patch_members, rename_members, renamed_checksums

SHARD_FORMAT = "{:08d}.tar"

# all but the uid strings, which phase 2 never needs (uid_hi/uid_lo carry the same)
_PHASE2_COLUMNS = ["uid_hi", "uid_lo", "expert", "ooc", "copies", "tar", "start_block", "end_block",
                   "key_len", *MEMBER_COLUMNS]


def _expert_rows(path, expert: int) -> pa.Table:
    """Expert `expert`'s rows of one phase-1 index file: just its row groups, as index_chunk
    writes them (one expert per row group, told by the column statistics), else a filtered read."""
    hint = " (an index written by an older modeflow: rerun phase 1, e.g. snakemake -R reshard_part)"
    with open_parquet(path, _PHASE2_COLUMNS, hint) as parquet:
        meta, column = parquet.metadata, parquet.schema_arrow.get_field_index("expert")
        groups = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max or stats.min != stats.max:
                table = parquet.read(columns=_PHASE2_COLUMNS, use_threads=False)
                return table.filter(pc.equal(table["expert"], expert))
            if stats.min == expert:
                groups.append(g)
        return parquet.read_row_groups(groups, columns=_PHASE2_COLUMNS, use_threads=False)


def _read_expert_rows(index_paths, expert: int) -> pa.Table:
    tables = [_expert_rows(p, expert) for p in index_paths]
    if not tables:
        return pa.table({})
    return pa.concat_tables([t.cast(tables[0].schema) for t in tables])


def absent_from_pool(index_paths, subset: np.ndarray) -> dict:
    """Subset entries whose uid matched no pool sample (every matched uid has an in-cluster row)."""
    tables = [read_columns(p, ["uid_hi", "uid_lo", "ooc", "copies"]) for p in index_paths]
    in_cluster = [t.filter(pc.invert(t["ooc"])) for t in tables]
    found = np.concatenate([_pairs(t) for t in in_cluster] or [np.zeros(0, UID_DTYPE)])
    high = np.sort(found["f0"])
    if not (high[1:] == high[:-1]).any():
        # each uid in the pool once (the usual case; distinct high halves prove it): an
        # in-cluster row's `copies` is how many subset entries its uid matched, so no search
        # of the subset is needed
        matched = sum(int(pc.sum(t["copies"]).as_py() or 0) for t in in_cluster)
        hi, lo = subset["f0"], subset["f1"]
        distinct = int(len(subset) > 0) + int(((hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])).sum())
        return {"absent_entries": int(len(subset)) - matched, "absent_uids": distinct - len(found)}
    present = multiplicity(sort_pairs(found), subset) > 0
    return {"absent_entries": int((~present).sum()),
            "absent_uids": int(len(np.unique(uid_keys(subset[~present]))))}


def _pool_samples(index_paths) -> int | None:
    """Pool samples the index jobs looked at (from the stats json next to each index parquet)."""
    stats = [Path(p).with_suffix(".json") for p in index_paths]
    if not all(s.exists() for s in stats):
        return None
    return sum(json.loads(s.read_text())["pool_samples"] for s in stats)


def _pairs(table: pa.Table) -> np.ndarray:
    out = np.empty(table.num_rows, dtype=UID_DTYPE)
    out["f0"], out["f1"] = table["uid_hi"].to_numpy(), table["uid_lo"].to_numpy()
    return out


_MAX_OPEN_TARS = 256


class _TarFiles:
    """The input tars, opened once per expert rather than once per shard; at most _MAX_OPEN_TARS
    stay open so a pool of many thousands of tars does not run out of descriptors."""

    def __init__(self, names: list[str]):
        self.names, self.limit, self.open = names, _MAX_OPEN_TARS, {}

    def __getitem__(self, tar: int) -> int:
        fd = self.open.get(tar)
        if fd is None:
            if len(self.open) >= self.limit:
                self.close()
            fd = self.open[tar] = os.open(self.names[tar], os.O_RDONLY)
        return fd

    def close(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()


# Bytes of output gathered per write: a buffer that stays in the CPU cache between the read
# into it and the write out of it. Gathering a whole shard (tens of MB) first made the write
# re-read the buffer from RAM, about half of phase 2's time (see bench/README.md, bench_reshard).
_COPY_BATCH_BYTES = 1 << 20


def _read_samples(files: _TarFiles, reads: list, into: memoryview) -> None:
    """Read each (tar id, byte offset, length, offset in `into`) sample straight into its place:
    one preadv each, no temporary bytes, no join. `into` is a reused buffer, because fresh memory
    costs a page fault and zeroing per page, about as much as the copy itself. (The alternatives
    tried, memory maps and copy_file_range, were no faster: bench/README.md, bench_reshard.)"""
    for t, a, n, o in reads:
        if os.preadv(files[t], [into[o:o + n]], a) != n:
            raise InputDataError(f"{files.names[t]}: shorter than when it was indexed (rerun reshard)")


def _batch_bounds(out_start: np.ndarray, limit: int) -> np.ndarray:
    """Sample indices where each copy batch begins (plus the end): the samples that start in the
    same `limit`-byte window of the output, so a batch holds at most limit + one sample bytes."""
    window = out_start // limit
    return np.concatenate([[0], np.flatnonzero(window[1:] != window[:-1]) + 1, [len(out_start)]])


def _scratch_bytes(blocks: np.ndarray, shard_size: int) -> int:
    """Buffer size that holds any copy batch of any shard of these samples (block counts)."""
    if len(blocks) == 0:
        return 0
    biggest_shard = int(np.add.reduceat(blocks, np.arange(0, len(blocks), shard_size)).max()) * BLOCK
    return min(biggest_shard, _COPY_BATCH_BYTES + int(blocks.max()) * BLOCK)


def _write_shard(path, entries: dict, sel: np.ndarray, first_key: int, key_width: int,
                 files: _TarFiles, scratch: np.ndarray) -> None:
    """One output tar: the selected samples' blocks as they are, member headers renamed to
    running keys (only the header blocks are touched). Copied in batches of about
    _COPY_BATCH_BYTES: read the batch's samples, rename their headers, write."""
    tar, start, end = entries["tar"][sel], entries["start_block"][sel], entries["end_block"][sel]
    length = end - start
    out_start = np.cumsum(length) - length
    n_members = entries["n_members"][sel]
    members = concat_ranges(entries["member_offsets"][sel], n_members)
    heads = np.repeat(out_start, n_members) + entries["member_blocks"][members]
    keys = digit_keys(np.repeat(np.arange(first_key, first_key + len(sel)), n_members), key_width)
    key_len = np.repeat(entries["key_len"][sel], n_members)
    same_width = bool((key_len == key_width).all())  # img2dataset's 9-digit keys: patch in place
    if same_width:
        chksums = renamed_checksums(entries["member_chk_base"][members], keys)
        indexed_chksums = entries["member_chk_field"][members]
    first_member = np.append(np.cumsum(n_members) - n_members, len(heads))
    # the copy plan, made once per shard: a batch's samples are read in file order, each into its
    # place in the batch (offsets in bytes from the batch's start)
    bounds = _batch_bounds(out_start * BLOCK, _COPY_BATCH_BYTES)
    batch = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    batch_start = out_start[bounds[:-1]][batch]
    heads -= np.repeat(batch_start, n_members)
    order = np.lexsort((start, tar, batch))  # sorted by batch first: batch b stays at bounds[b]:bounds[b + 1]
    reads = list(zip(tar[order].tolist(), (start[order] * BLOCK).tolist(), (length[order] * BLOCK).tolist(),
                     ((out_start - batch_start)[order] * BLOCK).tolist()))
    batch_bytes = np.add.reduceat(length, bounds[:-1]) * BLOCK if len(sel) else np.zeros(0, np.int64)
    into = memoryview(scratch)
    bounds, first_member = bounds.tolist(), first_member.tolist()
    # a new file ("xb"), never a truncated one: truncating makes ext4 (auto_da_alloc) flush the
    # whole file to disk on close, which cost more than writing it
    with open(path, "xb") as fh:
        for a, b, n_bytes in zip(bounds[:-1], bounds[1:], batch_bytes.tolist()):
            _read_samples(files, reads[a:b], into)
            buf = scratch[:n_bytes]
            m = slice(first_member[a], first_member[b])
            if same_width:
                patch_members(buf, heads[m], keys[m], chksums[m], indexed_chksums[m])
            else:
                rename_members(buf, heads[m], key_len[m], keys[m])
            fh.write(into[:n_bytes])
        fh.write(END_OF_ARCHIVE)


def _entry_arrays(table: pa.Table) -> tuple[dict, list[str]]:
    """Flatten the expert's index rows, one per written copy (a uid listed k times -> k copies);
    tars as ids into the returned list of paths."""
    copies = table["copies"].to_numpy()
    rep = np.repeat(np.arange(table.num_rows), copies)
    lengths = pc.list_value_length(table["member_blocks"].combine_chunks()).to_numpy().astype(np.int64)
    if not pa.types.is_dictionary(table.schema.field("tar").type):
        table = table.set_column(table.schema.get_field_index("tar"), "tar", table["tar"].dictionary_encode())
    tar = table.unify_dictionaries()["tar"]  # one dictionary shared by the chunks (per index file)
    tar_ids = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in tar.chunks] or
                             [np.zeros(0, np.int64)]).astype(np.int64)
    tar_names = tar.chunks[0].dictionary.to_pylist() if tar.num_chunks else []
    entries = {
        "pairs": _pairs(table)[rep],
        "ooc": table["ooc"].to_numpy(zero_copy_only=False)[rep],
        "tar": tar_ids[rep],
        "start_block": table["start_block"].to_numpy()[rep],
        "end_block": table["end_block"].to_numpy()[rep],
        "key_len": table["key_len"].to_numpy().astype(np.int64)[rep],
        "n_members": lengths[rep],
        "member_offsets": (np.cumsum(lengths) - lengths)[rep],
        # indexed by member, not by sample
        **{name: table[name].combine_chunks().flatten().to_numpy() for name in MEMBER_COLUMNS},
    }
    return entries, tar_names


def _relocate(recorded: list[str], tar_paths: Sequence[str | Path]) -> list[str]:
    here = {Path(p).name: str(p) for p in tar_paths}
    missing = [t for t in recorded if Path(t).name not in here]
    if missing:
        raise InputDataError(f"reshard: input tar {missing[0]} (recorded by phase 1) is not among this job's "
                             f"inputs ({len(here)} tars)")
    return [here[Path(t).name] for t in recorded]


def write_expert(index_paths, subset_path, out_dir, *, expert: int, num_experts: int, shard_size: int,
                 shuffle: bool, seed: int, empty_expert: str = "error", ooc_ratio: float | None = None,
                 subset_name: str | None = None, label: str | None = None,
                 tar_paths: Sequence[str | Path] | None = None) -> dict:
    """Write expert `expert`'s directory (DataComp layout) atomically; returns its meta.json.
    `label` names the output in meta.json and errors (default: the expert's name). `tar_paths`:
    where this job sees the input tars, matched by file name to the paths phase 1 recorded (under
    remote storage every job gets its own local copies)."""
    if empty_expert not in ("error", "allow"):
        raise ConfigError(f"cluster.empty_expert must be 'error' or 'allow', got {empty_expert!r}")
    if shard_size < 1:
        raise ConfigError(f"reshard.shard_size must be >= 1, got {shard_size}")
    name = label or expert_name(expert)
    # every file below goes into a temp directory renamed onto out_dir at the end: the directory
    # is the atomic unit, so its files are written in place
    subset = read_subset_file(subset_path)
    entries, tar_names = _entry_arrays(_read_expert_rows(index_paths, expert))
    if tar_paths is not None:
        tar_names = _relocate(tar_names, tar_paths)
    n = len(entries["pairs"])
    if n == 0 and empty_expert == "error":
        raise InputDataError(f"expert {name} has no samples (subset {subset_path}); set "
                             "cluster.empty_expert: allow to write it empty, or use fewer experts")
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng([seed % 2**63, expert, 0x5E]).permutation(n)
    entries = {k: (v if k in MEMBER_COLUMNS else v[order]) for k, v in entries.items()}
    key_width = max(9, len(str(max(n - 1, 0))))
    n_shards = -(-n // shard_size)
    files = _TarFiles(tar_names)
    scratch = np.empty(_scratch_bytes(entries["end_block"] - entries["start_block"], shard_size), np.uint8)
    with atomic_dir(out_dir) as tmp:
        try:
            for s in range(n_shards):
                sel = np.arange(s * shard_size, min(n, (s + 1) * shard_size))
                _write_shard(tmp / SHARD_FORMAT.format(s), entries, sel, int(sel[0]), key_width, files, scratch)
                in_cluster = int((~entries["ooc"][sel]).sum())
                (tmp / f"{s:08d}_stats.json").write_text(json_text({
                    "count": len(sel), "successes": len(sel), "failed_to_download": 0, "failed_to_resize": 0,
                    "in_cluster": in_cluster, "ooc": len(sel) - in_cluster}))
        finally:
            files.close()
        np.save(tmp / "sample_ids.npy", sort_pairs(entries["pairs"]))
        in_cluster = int((~entries["ooc"]).sum())
        pool_samples = _pool_samples(index_paths)
        meta = {
            "expert": name,
            "arguments": {"subset_file": str(subset_path), "subset": subset_name, "index_files": [str(p) for p in index_paths],
                          "expert": expert, "num_experts": num_experts, "shard_size": shard_size,
                          "shuffle": shuffle, "seed": seed, "ooc_ratio": ooc_ratio,
                          "empty_expert": empty_expert},
            "subset_entries": int(len(subset)),
            **absent_from_pool(index_paths, subset),
            "processed_samples": pool_samples,
            "output_samples": n,
            "in_cluster_samples": in_cluster,
            "ooc_samples": n - in_cluster,
            # DataComp's names (resharder.py writes them, train.py reads the two output_shard_*)
            "processed_count": pool_samples,
            "output_count": n,
            "output_shard_count": n_shards,
            "output_shard_format": SHARD_FORMAT,
            "shard_sizes": [min(shard_size, n - s * shard_size) for s in range(n_shards)],
            "shard_pattern": f"{{00000000..{n_shards - 1:08d}}}.tar" if n_shards else None,
            "key_width": key_width,
            "empty": n == 0,
        }
        (tmp / "meta.json").write_text(json_text(meta))
    return meta
