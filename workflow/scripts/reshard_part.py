"""Snakemake adapter: phase 1 of the reshard for one chunk (modeflow.reshard.index.index_chunk).
Without an `assign` input the subset is pooled into one output (the seed's and dense model's data)."""
from modeflow.common.joblog import job_log
from modeflow.reshard.index import index_chunk

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    stats = index_chunk(
        snakemake.input.embed,
        getattr(snakemake.input, "assign", None),
        snakemake.input.subset,
        params.tars,
        snakemake.output.index,
        snakemake.output.stats,
        num_experts=params.num_experts,
        ooc_ratio=params.ooc_ratio,
        seed=params.seed,
    )
    log.info("reshard index of chunk %s: %s", snakemake.wildcards.chunk, stats)
