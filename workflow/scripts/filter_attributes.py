"""Snakemake adapter: per-sample filter attributes of one chunk (modeflow.filters)."""
from modeflow.atomic import write_parquet
from modeflow.filters import sample_attributes
from modeflow.joblog import job_log

with job_log(snakemake.log[0]) as log:
    table = sample_attributes(snakemake.params.parquets, snakemake.input.uids)
    write_parquet(snakemake.output[0], table)
    log.info("chunk %s: attributes of %d samples", snakemake.wildcards.chunk, len(table))
