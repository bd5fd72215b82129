"""Benchmark: per-expert reshard (phase 1 over all chunks + phase 2 over all experts) against
plainly copying the same input tars, measured in the same run (best of --rounds, interleaved).

Baseline: one `cp tar1 ... tarN dest/` and one `cat tar1 ... tarN > out` subprocess per round,
each into a fresh target; the ratios use the faster of the two (`cp xN`, N cp processes side by
side, is printed for information). The reshard runs in four arms, outputs checked byte-identical:
1 worker; N workers (--workers) in a forked pool, as the pipeline runs the stage; N workers with a
fresh interpreter per job; 1 worker with the previous whole-shard copy path. Inputs are a
synthetic img2dataset-style pool in the page cache (--cold drops it before each arm, root only).
Bar: the N-worker arm reaches >= 0.5 of the copy's throughput (exit 1 below it, or when the arms'
outputs differ). What the arms show and the figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_reshard.py [--samples 20000] [--tars 10] [--chunk-size 2] [--experts 4]
        [--shard-size 1000] [--jpg-kb 16 48] [--workers N] [--rounds 5] [--dir DIR] [--cold]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # for fixtures, the tests' shard writer

import modeflow.reshard.write  # noqa: E402
from fixtures import Sample, write_shard  # noqa: E402
from modeflow.common.names import expert_name  # noqa: E402
from modeflow.reshard.index import index_chunk  # noqa: E402
from modeflow.reshard.write import write_expert  # noqa: E402
from modeflow.common.uids import uids_to_pairs  # noqa: E402

# How the reshard arms run their jobs. ONE: one after another in this process. POOL: side by side
# in a pool of forked workers started for the stage (its start-up timed). FRESH: side by side, a
# newly started interpreter per job that imports modeflow, as Snakemake starts one per job (its
# own per-job overhead not included). WHOLE: as ONE, with the previous phase-2 copy path.
ONE, POOL, FRESH, WHOLE = "1 worker", "pool", "fresh", "1 worker, whole-shard buffer"


def make_pool(root: Path, n_samples: int, n_tars: int, n_experts: int, chunk_size: int,
              jpg_bytes: tuple[int, int]) -> list:
    """Tars + per-chunk embed/assign tables; returns [(chunk, [tar paths])]."""
    rng = np.random.default_rng(0)
    per_tar = n_samples // n_tars
    chunks = []
    for c in range(0, n_tars, chunk_size):
        rows = {"uid": [], "shard": [], "key": []}
        tars = []
        for s in range(c, min(c + chunk_size, n_tars)):
            shard = f"{s:05d}"
            samples = [Sample(f"{shard}{j:04d}", f"a photo of thing {j}", jpg=rng.bytes(int(rng.integers(*jpg_bytes))),
                              uid=hashlib.md5(f"{s}/{j}".encode()).hexdigest()) for j in range(per_tar)]
            tars.append(str(write_shard(root / f"{shard}.tar", samples)))
            rows["uid"] += [sample.uid for sample in samples]
            rows["shard"] += [shard] * per_tar
            rows["key"] += [sample.key for sample in samples]
        chunk = f"chunk{c // chunk_size:03d}"
        pq.write_table(pa.table(rows), root / f"embed_{chunk}.parquet")
        expert = rng.integers(0, n_experts, len(rows["uid"])).astype(np.int32)
        pq.write_table(pa.table({"uid": rows["uid"], "expert": expert}), root / f"assign_{chunk}.parquet")
        chunks.append((chunk, tars))
    all_uids = pa.concat_tables([pq.read_table(root / f"embed_{c}.parquet") for c, _ in chunks])["uid"]
    np.save(root / "subset.npy", uids_to_pairs(all_uids.to_pylist()))
    return chunks


def drop_page_cache() -> None:
    """Evict cached file pages, so the next arm reads its tars from disk (a pool larger than RAM)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as err:
        sys.exit(f"--cold needs root to write /proc/sys/vm/drop_caches: {err}")


def settle(cold: bool) -> None:
    """Before each timed arm: write back what earlier steps left dirty (the pool, an arm's
    outputs), so the kernel's flusher does not run during the next arm; with `cold`, also drop
    the page cache."""
    if cold:
        drop_page_cache()
    else:
        os.sync()


def copy_tars(tars: list, dest: Path, how: str, workers: int = 1) -> None:
    """The baseline: coreutils copying the tars' bytes into a fresh target. "cp xN": N cp
    processes side by side, each over its own contiguous share of the tars."""
    dest.mkdir()
    if how == "cp":
        subprocess.run(["cp", *tars, str(dest)], check=True)
    elif how == "cat":
        with open(dest / "all.tar", "wb") as out:
            subprocess.run(["cat", *tars], stdout=out, check=True)
    else:
        shares = [list(part) for part in np.array_split(np.asarray(tars), workers) if len(part)]
        procs = [subprocess.Popen(["cp", *share, str(dest)]) for share in shares]
        if any(p.wait() for p in procs):
            raise RuntimeError(f"a parallel cp into {dest} failed")


def run_jobs(calls: list, executor: Executor | None) -> list:
    """(function, kwargs) calls: one after another here, or side by side in `executor`."""
    if executor is None:
        return [fn(**kwargs) for fn, kwargs in calls]
    futures = [executor.submit(fn, **kwargs) for fn, kwargs in calls]
    return [f.result() for f in futures]


# a job in a fresh interpreter: (module, function, kwargs) pickled in, its result pickled out
_FRESH_JOB = ("import importlib, pickle, sys; module, name, kwargs = pickle.load(sys.stdin.buffer); "
              "sys.stdout.buffer.write(pickle.dumps(getattr(importlib.import_module(module), name)(**kwargs)))")


def _in_fresh_process(fn, **kwargs):
    done = subprocess.run([sys.executable, "-c", _FRESH_JOB], input=pickle.dumps((fn.__module__, fn.__name__, kwargs)),
                          stdout=subprocess.PIPE, check=True)
    return pickle.loads(done.stdout)


class FreshProcesses(ThreadPoolExecutor):
    """At most `workers` jobs at a time, each in a newly started interpreter (threads only wait)."""

    def submit(self, fn, /, **kwargs):
        return super().submit(_in_fresh_process, fn, **kwargs)


def executor_for(how: str, workers: int) -> Executor | None:
    if how == POOL:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    if how == FRESH:
        return FreshProcesses(workers)
    return None


def reshard(root: Path, chunks, dest: Path, n_experts: int, shard_size: int,
            executor: Executor | None) -> tuple[int, float]:
    """Both phases, the expert jobs after every chunk job (as the DAG orders them); returns
    (samples written, seconds of phase 1)."""
    t = time.perf_counter()
    index = [dest / "index" / f"{chunk}.parquet" for chunk, _ in chunks]
    run_jobs([(index_chunk, dict(embed_path=root / f"embed_{chunk}.parquet",
                                 assign_path=root / f"assign_{chunk}.parquet", subset_path=root / "subset.npy",
                                 tar_paths=tars, out_parquet=out, out_json=out.with_suffix(".json"),
                                 num_experts=n_experts, ooc_ratio=0.02, seed=0))
              for (chunk, tars), out in zip(chunks, index)], executor)
    phase1 = time.perf_counter() - t
    metas = run_jobs([(write_expert, dict(index_paths=index, subset_path=root / "subset.npy",
                                          out_dir=dest / "experts" / expert_name(e), expert=e, num_experts=n_experts,
                                          shard_size=shard_size, shuffle=True, seed=0))
                      for e in range(n_experts)], executor)
    return sum(m["output_samples"] for m in metas), phase1


def run_reshard(arm: str, workers: int, *args) -> tuple[int, float]:
    """One reshard arm, the worker pool's start-up and shut-down inside the timing."""
    if arm == WHOLE:  # the previous copy path: gather a whole shard, then write it
        batch = modeflow.reshard.write._COPY_BATCH_BYTES
        modeflow.reshard.write._COPY_BATCH_BYTES = 1 << 62
        try:
            return reshard(*args, None)
        finally:
            modeflow.reshard.write._COPY_BATCH_BYTES = batch
    executor = executor_for(arm, workers)
    if executor is None:
        return reshard(*args, None)
    with executor:
        return reshard(*args, executor)


def outputs_digest(experts: Path) -> str:
    """Hash of every expert's tars, per-shard stats and sample ids (meta.json names the index
    paths, which differ per arm)."""
    h = hashlib.sha1()
    for f in sorted(p for p in experts.rglob("*") if p.is_file() and p.name != "meta.json"):
        h.update(str(f.relative_to(experts)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--tars", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=2, help="tars per chunk (phase-1 job)")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--jpg-kb", type=float, nargs=2, default=(16, 48), metavar=("LO", "HI"),
                    help="jpg payload size range in KiB (default: DataComp-style 256-512 px images)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="jobs side by side in the parallel arms, as snakemake --cores (default: the CPU "
                         "cores this process may use)")
    ap.add_argument("--rounds", type=int, default=5, help="best of this many interleaved rounds")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before each arm (root only): inputs come from disk, as "
                         "for a pool larger than RAM; the default compares warm-cache CPU/memory cost")
    args = ap.parse_args()
    n_workers = max(1, args.workers)
    cp_n = f"cp x{n_workers}"
    arms = {ONE: 1, POOL: n_workers, FRESH: n_workers, WHOLE: 1}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        jpg = (int(args.jpg_kb[0] * 1024), int(args.jpg_kb[1] * 1024) + 1)
        chunks = make_pool(root, args.samples, args.tars, args.experts, args.chunk_size, jpg)
        tars = [p for _, chunk_tars in chunks for p in chunk_tars]
        n = sum(pq.read_metadata(root / f"embed_{c}.parquet").num_rows for c, _ in chunks)
        size = sum(Path(p).stat().st_size for p in tars)
        print(f"pool: {n} samples in {args.tars} tars ({size / 2**20:.1f} MiB, jpg {args.jpg_kb[0]:g}-"
              f"{args.jpg_kb[1]:g} KiB), {len(chunks)} chunks, {args.experts} experts, built in "
              f"{time.perf_counter() - t:.1f}s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        best: dict[str, float] = {}
        digests: dict[str, str] = {}
        for rep in range(args.rounds):
            took = {}
            for how in ("cp", "cat", cp_n):
                settle(args.cold)
                t = time.perf_counter()
                copy_tars(tars, root / f"copy{rep}", how.split()[0] if how != cp_n else "cpN", n_workers)
                took[how] = time.perf_counter() - t
                shutil.rmtree(root / f"copy{rep}")
            for arm, workers in arms.items():
                settle(args.cold)
                dest = root / f"reshard{rep}"
                t = time.perf_counter()
                written, took[f"{arm} phase 1"] = run_reshard(arm, workers, root, chunks, dest, args.experts,
                                                                args.shard_size)
                took[arm] = time.perf_counter() - t
                if rep == 0:  # every arm must write the same bytes
                    digests[arm] = outputs_digest(dest / "experts")
                shutil.rmtree(dest)  # outputs would crowd the page cache
            print(f"  round {rep}: " + ", ".join(f"{k} {v:.3f}s" for k, v in took.items() if "phase" not in k) +
                  f" (load {os.getloadavg()[0]:.2f})", flush=True)
            best = {k: min(best.get(k, float("inf")), v) for k, v in took.items()}
    rate = {k: n / v for k, v in best.items()}
    copy = max(rate["cp"], rate["cat"])
    for k in ("cp", "cat", cp_n):
        print(f"{k + ':':30} {best[k]:.3f}s  {rate[k]:9,.0f} samples/s  {size / best[k] / 2**20:6,.0f} MiB/s")
    workers = f"{n_workers} worker{'s' if n_workers > 1 else ''}"
    label = {ONE: "reshard, 1 worker", POOL: f"reshard, {workers} (pool)",
             FRESH: f"reshard, {workers} (fresh/job)", WHOLE: "reshard, 1 worker, old copy"}
    for arm in arms:
        print(f"{label[arm] + ':':30} {best[arm]:.3f}s  {rate[arm]:9,.0f} samples/s  "
              f"(phase 1 best {best[arm + ' phase 1']:.3f}s)")
    same = len(set(digests.values())) == 1
    print(f"{written} samples written (in-cluster + 2% ooc); outputs identical across the reshard arms: "
          f"{'yes' if same else 'NO'}; old copy = the whole shard gathered, then written")
    cache = "cold: page cache dropped before each arm" if args.cold else "warm page cache"
    print(f"ratio reshard/copy ({cache}; copy = the faster of cp and cat, one process):")
    print(f"  1 worker (one job after another): {rate[ONE] / copy:.2f}")
    print(f"  {workers}, the stage as the pipeline runs it: {rate[POOL] / copy:.2f} (gate, threshold 0.5)")
    print(f"  {workers}, a fresh process per job: {rate[FRESH] / copy:.2f}")
    print(f"  {workers} vs {cp_n} (as parallel as the reshard): {rate[POOL] / rate[cp_n]:.2f}")
    return 0 if same and rate[POOL] / copy >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
