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


def existing_shards_dir(cfg: dict) -> str | None:
    """The directory of the pool's already-written shards (pool.source shards, or datacomp with
    pool.datacomp.shards), without a trailing slash; None when the workflow downloads them."""
    pool = cfg["pool"]
    path = {"shards": pool["shards"]["path"], "datacomp": pool["datacomp"]["shards"]}.get(pool["source"])
    return path.rstrip("/") if path else None


def existing_shards_key(cfg: dict) -> str:
    """The config key that names the existing shards' directory, for messages."""
    return "pool.datacomp.shards" if cfg["pool"]["source"] == "datacomp" else "pool.shards.path"


def existing_shards(directory: str, key: str = "pool.shards.path") -> tuple[str, ...]:
    """Sorted names (without .tar) of the shards in `directory`: a local path or an fsspec URL."""
    names = sorted(Path(name).stem for name in _tar_names(directory, key))
    if not names:
        raise InputDataError(f"no .tar shards in {directory} ({key})")
    return tuple(names)


def _tar_names(directory: str, key: str = "pool.shards.path") -> list[str]:
    """Entry names ending in .tar. A local directory is read with one scandir and no stat per
    entry: every job re-plans when it parses the Snakefile, and fsspec's glob stats each of
    10,000 shards (~0.3 s)."""
    if "://" not in directory:
        if not os.path.isdir(directory):
            raise InputDataError(f"{key} is not a directory: {directory}")
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.name.endswith(".tar")]
    import fsspec

    fs, root = fsspec.core.url_to_fs(directory)
    if not fs.isdir(root):
        raise InputDataError(f"{key} is not a directory: {directory}")
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
    if existing_shards_dir(cfg):
        shards = existing_shards(existing_shards_dir(cfg), existing_shards_key(cfg))
    else:
        if source == "demo":
            rows = pool["demo"]["num_samples"]
        elif source == "url_list":
            rows = count_rows(pool["url_list"]["path"], pool["url_list"]["format"])
        elif source == "image_folder":
            rows = count_rows(pool["image_folder"]["captions"])
        elif source == "datacomp":  # the parquets' footers: no row is read
            from modeflow.pool.datacomp import CommonPool

            rows = CommonPool.open(pool["datacomp"]["metadata"]).num_rows()
        else:  # the schema's enum makes this unreachable; keep the error explicit anyway
            raise ConfigError(f"config key 'pool.source': unknown source '{source}'")
        if rows == 0:
            raise InputDataError(f"the pool ({source}) has no rows")
        shards = tuple(shard_name(i) for i in range(math.ceil(rows / cfg["download"]["shard_size"])))
    size = chunk_size(len(shards), cfg["jobs"])
    chunks = {shards[i]: shards[i : i + size] for i in range(0, len(shards), size)}
    chunk_of = {shard: chunk for chunk, members in chunks.items() for shard in members}
    return ShardPlan(shards=shards, chunks=chunks, num_rows=rows, chunk_of=chunk_of)
