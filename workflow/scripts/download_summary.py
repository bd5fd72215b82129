"""Snakemake adapter: aggregate per-shard img2dataset stats into the report's download summary."""
from modeflow.common.atomic import write_json
from modeflow.pool.download import plot_summary, summarize
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    summary = summarize(snakemake.params.stats)
    log.info("download summary: %s", summary)
    write_json(snakemake.output.summary, summary)
    plot_summary(summary, snakemake.output.plot)
