"""Snakemake adapter: caption embeddings of an added expert's new shards (modeflow.embed.encode.embed_job),
with the encoder the mixture was clustered with."""
from modeflow.common.joblog import job_log
from modeflow.embed.encode import embed_job

with job_log(snakemake.log[0]) as log:
    stats = embed_job(list(snakemake.input.tars), snakemake.output.vectors, snakemake.output.uids,
                      snakemake.params.embed, snakemake.threads)
    log.info("embedded the new data of %s: %s", snakemake.wildcards.label, stats)
