"""Static planning of the DAG: which shards the pool yields and how they are batched into jobs.

Snakemake needs every job's outputs when it builds the DAG, so counts come from the config (demo)
or from cheap reads (row count of a url list, parsed as the pool step parses it; file names of
existing shards) — never
from reading the data itself. Shard `s` always holds pool rows [s * shard_size, (s + 1) * shard_size).

Per-shard stages (download, embed, assign) run one job per *chunk*: consecutive shards named after
their first shard. DAG building costs milliseconds per job, so a pool of 10,000 shards must not
become 10,000 jobs per stage; `jobs.shards_per_job: auto` keeps every stage under
`jobs.max_jobs_per_stage` jobs, and on small pools a chunk is a single shard.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.table import count_rows

SHARD_DIGITS = 5  # img2dataset's own naming: 00000.tar


def shard_name(index: int) -> str:
    return f"{index:0{SHARD_DIGITS}d}"


@dataclass(frozen=True)
class ShardPlan:
    shards: tuple[str, ...]
    chunks: dict[str, tuple[str, ...]]  # chunk name (its first shard) -> its shards, in order
    num_rows: int | None  # pool rows (before download failures); None for existing shards
    chunk_of: dict[str, str]  # shard -> its chunk, for input functions that run once per job


def existing_shards(directory: str) -> tuple[str, ...]:
    """Sorted names (without .tar) of the shards in `directory`: a local path or an fsspec URL."""
    names = sorted(Path(name).stem for name in _tar_names(directory))
    if not names:
        raise InputDataError(f"no .tar shards in {directory} (pool.shards.path)")
    return tuple(names)


def _tar_names(directory: str) -> list[str]:
    """Entry names ending in .tar. A local directory is read with one scandir and no stat per
    entry: every job re-plans when it parses the Snakefile, and fsspec's glob stats each of
    10,000 shards (~0.3 s)."""
    if "://" not in directory:
        if not os.path.isdir(directory):
            raise InputDataError(f"pool.shards.path is not a directory: {directory}")
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.name.endswith(".tar")]
    import fsspec

    fs, root = fsspec.core.url_to_fs(directory)
    if not fs.isdir(root):
        raise InputDataError(f"pool.shards.path is not a directory: {directory}")
    return [Path(path).name for path in fs.glob(f"{root.rstrip('/')}/*.tar")]


def chunk_size(num_shards: int, jobs_cfg: dict) -> int:
    per_job = jobs_cfg["shards_per_job"]
    if per_job == "auto":
        return max(1, math.ceil(num_shards / jobs_cfg["max_jobs_per_stage"]))
    return per_job


def plan_shards(cfg: dict) -> ShardPlan:
    pool = cfg["pool"]
    source = pool["source"]
    rows = None
    if source == "shards":
        shards = existing_shards(pool["shards"]["path"])
    else:
        if source == "demo":
            rows = pool["demo"]["num_samples"]
        elif source == "url_list":
            rows = count_rows(pool["url_list"]["path"], pool["url_list"]["format"])
        elif source == "image_folder":
            rows = count_rows(pool["image_folder"]["captions"])
        else:  # the schema's enum makes this unreachable; keep the error explicit anyway
            raise ConfigError(f"config key 'pool.source': unknown source '{source}'")
        if rows == 0:
            raise InputDataError(f"the pool ({source}) has no rows")
        shards = tuple(shard_name(i) for i in range(math.ceil(rows / cfg["download"]["shard_size"])))
    size = chunk_size(len(shards), cfg["jobs"])
    chunks = {shards[i]: shards[i : i + size] for i in range(0, len(shards), size)}
    chunk_of = {shard: chunk for chunk, members in chunks.items() for shard in members}
    return ShardPlan(shards=shards, chunks=chunks, num_rows=rows, chunk_of=chunk_of)
