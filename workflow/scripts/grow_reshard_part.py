"""Snakemake adapter: phase 1 of the reshard of an added expert's cluster (modeflow.reshard.index.index_chunk):
its new shards pooled through the cluster's members (a subset file), so phase 2 writes them as one expert."""
from modeflow.common.joblog import job_log
from modeflow.reshard.index import index_chunk

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    stats = index_chunk(snakemake.input.embed, None, snakemake.input.subset, list(snakemake.input.tars),
                        snakemake.output.index, snakemake.output.stats, num_experts=1, ooc_ratio=0.0,
                        seed=params.seed)
    log.info("reshard index of the new data of %s: %s", snakemake.wildcards.label, stats)
