"""Benchmark: per-expert reshard (phase 1 over all chunks + phase 2 over all experts, in-process)
against plainly copying the same input tars, measured in the same run (best of 2, interleaved).

Synthetic pool: img2dataset-style tars written with webdataset's TarWriter (pax header per
member, as img2dataset writes), random 2-4 KB "jpg" payloads. Exits 1 if reshard runs at less than
half the copy's samples/s.

    .venv/bin/python bench/bench_reshard.py [--samples 20000] [--tars 10] [--experts 4]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from modeflow.reshard import index_chunk, write_expert
from modeflow.uids import uids_to_pairs


def make_pool(root: Path, n_samples: int, n_tars: int, n_experts: int, chunk_size: int) -> list:
    """Tars + per-chunk embed/assign tables; returns [(chunk, [tar paths])]."""
    rng = np.random.default_rng(0)
    per_tar = n_samples // n_tars
    chunks = []
    for c in range(0, n_tars, chunk_size):
        rows = {"uid": [], "shard": [], "key": []}
        tars = []
        for s in range(c, min(c + chunk_size, n_tars)):
            shard = f"{s:05d}"
            tars.append(str(root / f"{shard}.tar"))
            with wds.TarWriter(tars[-1]) as sink:
                for j in range(per_tar):
                    key, uid = f"{shard}{j:04d}", hashlib.md5(f"{s}/{j}".encode()).hexdigest()
                    sink.write({"__key__": key, "jpg": rng.bytes(int(rng.integers(2048, 4096))),
                                "txt": f"a photo of thing {j}", "json": {"uid": uid, "key": key}})
                    rows["uid"].append(uid)
                    rows["shard"].append(shard)
                    rows["key"].append(key)
        chunk = f"chunk{c // chunk_size:03d}"
        pq.write_table(pa.table(rows), root / f"embed_{chunk}.parquet")
        expert = rng.integers(0, n_experts, len(rows["uid"])).astype(np.int32)
        pq.write_table(pa.table({"uid": rows["uid"], "expert": expert}), root / f"assign_{chunk}.parquet")
        chunks.append((chunk, tars))
    all_uids = pa.concat_tables([pq.read_table(root / f"embed_{c}.parquet") for c, _ in chunks])["uid"]
    np.save(root / "subset.npy", uids_to_pairs(all_uids.to_pylist()))
    return chunks


def copy_tars(chunks, dest: Path) -> None:
    dest.mkdir()
    for _, tars in chunks:
        for tar in tars:
            shutil.copyfile(tar, dest / Path(tar).name)


def reshard(root: Path, chunks, dest: Path, n_experts: int, shard_size: int) -> tuple[int, float]:
    """Both phases; returns (samples written, seconds of phase 1)."""
    t = time.perf_counter()
    index = []
    for chunk, tars in chunks:
        index.append(dest / "index" / f"{chunk}.parquet")
        index_chunk(root / f"embed_{chunk}.parquet", root / f"assign_{chunk}.parquet", root / "subset.npy",
                    tars, index[-1], dest / "index" / f"{chunk}.json",
                    num_experts=n_experts, ooc_ratio=0.02, seed=0)
    phase1 = time.perf_counter() - t
    written = 0
    for e in range(n_experts):
        meta = write_expert(index, root / "subset.npy", dest / "experts" / f"{e:02d}", expert=e,
                            num_experts=n_experts, shard_size=shard_size, shuffle=True, seed=0)
        written += meta["output_samples"]
    return written, phase1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--tars", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=2, help="tars per chunk (phase-1 job)")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        chunks = make_pool(root, args.samples, args.tars, args.experts, args.chunk_size)
        n = sum(pq.read_metadata(root / f"embed_{c}.parquet").num_rows for c, _ in chunks)
        size = sum(Path(p).stat().st_size for _, tars in chunks for p in tars)
        print(f"pool: {n} samples in {args.tars} tars ({size / 2**20:.1f} MiB), "
              f"{len(chunks)} chunks, built in {time.perf_counter() - t:.1f}s")
        best = {"copy": float("inf"), "reshard": float("inf")}
        for rep in range(2):
            t = time.perf_counter()
            copy_tars(chunks, root / f"copy{rep}")
            copied = time.perf_counter() - t
            best["copy"] = min(best["copy"], copied)
            t = time.perf_counter()
            written, phase1 = reshard(root, chunks, root / f"reshard{rep}", args.experts, args.shard_size)
            elapsed = time.perf_counter() - t
            print(f"  round {rep}: copy {copied:.3f}s, reshard {elapsed:.3f}s (phase 1 {phase1:.3f}s)")
            best["reshard"] = min(best["reshard"], elapsed)
    rate = {k: n / v for k, v in best.items()}
    ratio = rate["reshard"] / rate["copy"]
    print(f"copy:    {best['copy']:.3f}s  {rate['copy']:,.0f} samples/s")
    print(f"reshard: {best['reshard']:.3f}s  {rate['reshard']:,.0f} samples/s "
          f"({written} samples written: in-cluster + 2% ooc, {args.experts} experts)")
    print(f"ratio reshard/copy: {ratio:.2f} (threshold 0.5)")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
