"""Snakemake adapter: a chunk's embeddings read from the CommonPool's npz features instead of
running an encoder (modeflow.embed.precomputed)."""
from modeflow.common.joblog import job_log
from modeflow.embed.precomputed import embed_precomputed, model_embed_dim

opts = snakemake.params.embed
with job_log(snakemake.log[0]) as log:
    stats = embed_precomputed(snakemake.input.index, snakemake.params.metadata, opts["features"],
                              snakemake.output.vectors, snakemake.output.uids,
                              expected_dim=model_embed_dim(opts["model"]))
    log.info("embedded chunk %s: %s", snakemake.wildcards.chunk, stats)
