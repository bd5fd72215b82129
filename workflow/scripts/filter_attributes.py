"""Snakemake adapter: per-sample filter attributes of one chunk (modeflow.filter.attributes)."""
from modeflow.common.atomic import write_parquet
from modeflow.filter.attributes import sample_attributes
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    table = sample_attributes(snakemake.params.parquets, snakemake.input.uids)
    write_parquet(snakemake.output[0], table)
    log.info("chunk %s: attributes of %d samples", snakemake.wildcards.chunk, len(table))
