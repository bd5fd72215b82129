"""Snakemake adapter: the random-split control's assignment tables, one per chunk, from the same kept
data as the experts with the clusters' sizes (modeflow.reshard.random_split.write_random_assignments)."""
from modeflow.common.joblog import job_log
from modeflow.reshard.random_split import write_random_assignments

params, inp, out = snakemake.params, snakemake.input, snakemake.output
with job_log(snakemake.log[0]) as log:
    stats = write_random_assignments(list(inp.embed), list(inp.assign), inp.subset, list(out.assign), out.stats,
                                     num_experts=params.num_experts, seed=params.seed)
    log.info("random split of %d kept samples into parts of %s; %.1f%% land in their own cluster's part",
             stats["kept_samples"], stats["sizes"], 100 * stats["same_as_cluster"])
