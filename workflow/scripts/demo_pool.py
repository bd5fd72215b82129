"""Snakemake adapter: build the embedded demo pool (modeflow.demo)."""
from modeflow.demo import generate_demo_pool
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    summary = generate_demo_pool(snakemake.output[0], seed=snakemake.params.seed, **snakemake.params.demo)
    log.info("demo pool: %s", summary)
