"""Snakemake adapter: download one chunk of pool shards with img2dataset (modeflow.download)."""
import contextlib
from pathlib import Path

from modeflow.download import download_shards
from modeflow.httpserver import serve_demo
from modeflow.joblog import job_log

options = snakemake.params.options
with job_log(snakemake.log[0]) as log:
    # The demo's urls name a host that only our loopback proxy answers for.
    demo = snakemake.input.demo
    server = serve_demo(Path(demo[0])) if demo else contextlib.nullcontext()
    with server as proxy:
        summary = download_shards(
            snakemake.input.table,
            list(snakemake.params.shards),
            shard_size=options["shard_size"],
            out_dir=snakemake.output[0],
            staging_dir=snakemake.params.staging,
            options=options,
            proxy=proxy,
            extra_cols=snakemake.params.extra_cols,
        )
    log.info("chunk %s: %s", snakemake.wildcards.chunk, summary)
