"""Snakemake adapter: filter summary and funnel plot (modeflow.filter.report)."""
from modeflow.common.atomic import write_json
from modeflow.filter.report import plot_funnel, summarize
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    summary = summarize(dict(zip(snakemake.params.names, snakemake.input.stats)), snakemake.params.use)
    write_json(snakemake.output.summary, summary)
    plot_funnel(summary, snakemake.output.funnel)
    log.info("filter.use=%s keeps %d rows", summary["use"], summary["rows_used"])
