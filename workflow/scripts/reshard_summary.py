"""Snakemake adapter: verify the experts against the reshard index and plot their sizes."""
from modeflow.common.atomic import write_json
from modeflow.common.joblog import job_log
from modeflow.reshard.check import plot_experts, verify_experts

with job_log(snakemake.log[0]) as log:
    summary = verify_experts(snakemake.input.experts, snakemake.input.index, snakemake.input.subset)
    log.info("reshard verified: %s", summary)
    write_json(snakemake.output.summary, summary)
    plot_experts(summary, snakemake.output.plot)
