"""Snakemake adapter: expert sizes over all chunks (empty-expert check) and the report's plots."""
from modeflow.common.atomic import write_json
from modeflow.cluster.summary import check_empty_experts, summarize_assignments
from modeflow.cluster.report import plot_projection, plot_sizes
from modeflow.common.joblog import job_log

opts = snakemake.params.cluster
with job_log(snakemake.log[0]) as log:
    summary = summarize_assignments(snakemake.input.assign, opts["num_fine"], opts["num_experts"])
    log.info("expert sizes: %s", summary["expert_sizes"])
    check_empty_experts(summary, opts["empty_expert"])
    plot_sizes(summary, snakemake.output.sizes)
    plot_projection(snakemake.input.vectors, snakemake.input.assign, snakemake.output.projection,
                    num_experts=opts["num_experts"], seed=snakemake.params.seed)
    write_json(snakemake.output.summary, summary)
