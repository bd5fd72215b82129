"""Snakemake adapter: a CommonPool chunk's index, uid -> (shard, key) and its metadata row, from the
shards' own img2dataset parquets (modeflow.pool.shard_index.chunk_index)."""
from modeflow.common.atomic import write_json, write_parquet
from modeflow.common.joblog import job_log
from modeflow.pool.datacomp import CommonPool
from modeflow.pool.shard_index import chunk_index

with job_log(snakemake.log[0]) as log:
    index, stats = chunk_index(snakemake.params.parquets, CommonPool.open(snakemake.params.metadata))
    if stats["absent_from_metadata"]:
        log.warning("chunk %s: %d shard sample(s) have a uid that %s does not list (per shard %s; e.g. %s); "
                    "no metadata filter selects them and they have no precomputed features", snakemake.wildcards.chunk, stats["absent_from_metadata"],
                    snakemake.params.metadata, stats["absent_per_shard"], stats["absent_examples"])
    write_parquet(snakemake.output.index, index)
    write_json(snakemake.output.stats, stats)
    log.info("pool index of chunk %s: %s", snakemake.wildcards.chunk, stats)
