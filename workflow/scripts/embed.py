"""Snakemake adapter: caption embeddings of one chunk of shards (modeflow.embed.encode)."""
import torch

from modeflow.embed.encode import default_read_workers, embed_shards
from modeflow.embed.encoders import load_text_encoder
from modeflow.common.joblog import job_log

opts = snakemake.params.embed
with job_log(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    encoder = load_text_encoder(
        opts["encoder"],
        opts["model"],
        checkpoint=opts["checkpoint"],
        pooling=opts["pooling"],
        device=opts["device"],
        max_length=opts["max_length"],
    )
    stats = embed_shards(
        snakemake.params.tars,
        snakemake.output.vectors,
        snakemake.output.uids,
        encoder,
        batch_size=opts["batch_size"],
        read_workers=default_read_workers(encoder, snakemake.threads),
    )
    log.info("embedded chunk %s: %s", snakemake.wildcards.chunk, stats)
