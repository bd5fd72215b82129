"""Checks and report of the per-expert reshard: counts against the phase-1 index, and a plot."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from modeflow.common.errors import ModeflowError
from modeflow.common.subset_file import read_subset_file
from modeflow.reshard.membership import multiplicity
from modeflow.reshard.write import SHARD_FORMAT
from modeflow.common.plots import png_figure
from modeflow.wds.reader import iter_samples
from modeflow.common.uids import uid_pairs


def _fail(msg: str):
    raise ModeflowError(f"reshard verification failed: {msg}")


def _check_layout(d: Path, meta: dict, shard_size: int) -> np.ndarray:
    """Shard files, their stats and sample_ids agree with meta.json; returns sample_ids."""
    n, n_shards = meta["output_samples"], meta["output_shard_count"]
    tars = sorted(d.glob("*.tar"))
    if [t.name for t in tars] != [SHARD_FORMAT.format(s) for s in range(n_shards)]:
        _fail(f"{d}: shard files {[t.name for t in tars]} do not match output_shard_count={n_shards}")
    sizes = [json.loads((d / f"{s:08d}_stats.json").read_text())["count"] for s in range(n_shards)]
    if sizes[:-1] != [shard_size] * (n_shards - 1) or sum(sizes) != n or (sizes and not 0 < sizes[-1] <= shard_size):
        _fail(f"{d}: shard sizes {sizes} are not {shard_size} each (last partial) summing to {n}")
    ids = np.load(d / "sample_ids.npy")
    if len(ids) != n or meta["in_cluster_samples"] + meta["ooc_samples"] != n:
        _fail(f"{d}: sample_ids has {len(ids)} entries, meta.json says {n}")
    return ids


def _tar_uids(d: Path, n_shards: int) -> np.ndarray:
    """uids read back from the written tars' json members (keys must be unique in the expert)."""
    uids, keys = [], set()
    for s in range(n_shards):
        for sample in iter_samples(str(d / SHARD_FORMAT.format(s)), want=("json",)):
            if sample["__key__"] in keys:
                _fail(f"{d}: sample key {sample['__key__']} written twice")
            keys.add(sample["__key__"])
            uids.append(json.loads(sample["json"])["uid"])
    return np.sort(uid_pairs(uids, str(d)))


def verify_experts(expert_dirs, index_paths, subset_path, *, deep: bool = False) -> dict:
    """Check every expert against the phase-1 index: each kept uid written in-cluster exactly its
    subset multiplicity times, in exactly one expert, plus the ooc copies; shard sizes exact but
    the last. expert_dirs are in expert order (00, 01, ...); deep=True also reads every written tar back. Raises ModeflowError; returns counts."""
    index = [pq.read_table(p, columns=["uid", "expert", "ooc", "copies"]) for p in index_paths]
    uid = np.concatenate([np.asarray(t["uid"].to_pylist(), dtype=object) for t in index])
    expert = np.concatenate([t["expert"].to_numpy() for t in index])
    ooc = np.concatenate([t["ooc"].to_numpy(zero_copy_only=False) for t in index])
    copies = np.concatenate([t["copies"].to_numpy() for t in index])
    pairs = uid_pairs(uid.tolist(), "reshard index")
    subset = read_subset_file(subset_path)
    owners = Counter(uid[~ooc].tolist())
    if owners and max(owners.values()) > 1:
        _fail(f"uid {owners.most_common(1)[0][0]} is in-cluster in more than one expert/row")
    if not np.array_equal(copies, multiplicity(subset, pairs)):
        _fail("index copies differ from the subset's multiplicities")
    result = {"experts": {}, "in_cluster_total": 0, "expected_in_cluster_total": int(copies[~ooc].sum())}
    for e, d in enumerate(map(Path, expert_dirs)):
        meta = json.loads((d / "meta.json").read_text())
        ids = _check_layout(d, meta, meta["arguments"]["shard_size"])
        mine = expert == e
        expected = np.sort(np.repeat(pairs[mine], copies[mine]))
        if not np.array_equal(ids, expected):
            _fail(f"{d}: sample_ids differ from the index's uids for expert {e}")
        n_in = int(copies[mine & ~ooc].sum())
        if meta["in_cluster_samples"] != n_in or meta["ooc_samples"] != int(copies[mine & ooc].sum()):
            _fail(f"{d}: meta.json in-cluster/ooc counts differ from the index")
        if deep and not np.array_equal(_tar_uids(d, meta["output_shard_count"]), ids):
            _fail(f"{d}: uids in the tars differ from sample_ids.npy")
        result["experts"][meta["expert"]] = {
            "samples": meta["output_samples"], "in_cluster": n_in, "ooc": meta["ooc_samples"],
            "shards": meta["output_shard_count"], "empty": meta["empty"]}
        result["in_cluster_total"] += n_in
    if result["in_cluster_total"] != result["expected_in_cluster_total"]:
        _fail(f"{result['in_cluster_total']} in-cluster samples written, "
              f"{result['expected_in_cluster_total']} kept")
    metas = [json.loads((Path(d) / "meta.json").read_text()) for d in expert_dirs]
    result.update({k: metas[0][k] for k in ("subset_entries", "absent_entries", "absent_uids")} if metas else {})
    result["verified_deep"] = deep
    return result


def plot_experts(summary: dict, png_path) -> None:
    """Stacked bars of in-cluster and out-of-cluster samples per expert (for the report)."""
    names = list(summary["experts"])
    in_c = [summary["experts"][k]["in_cluster"] for k in names]
    ooc = [summary["experts"][k]["ooc"] for k in names]
    with png_figure(png_path, (max(4, 1 + 0.6 * len(names)), 3.5)) as fig:
        ax = fig.subplots()
        ax.bar(names, in_c, label="in-cluster", color="tab:blue")
        bars = ax.bar(names, ooc, bottom=in_c, label="out-of-cluster", color="tab:orange")
        ax.bar_label(bars, labels=[f"{summary['experts'][k]['shards']} sh" for k in names], fontsize=8)
        ax.set_xlabel("expert")
        ax.set_ylabel("samples")
        ax.set_title(f"{summary['in_cluster_total']} kept samples; {summary.get('absent_entries', 0)} "
                     "subset entries absent from the pool", fontsize=9)
        ax.legend()
