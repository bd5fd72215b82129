"""Snakemake adapter: download one shard of the pool with img2dataset (modeflow.download)."""
import contextlib
from pathlib import Path

from modeflow.download import download_shards
from modeflow.httpserver import serve_demo
from modeflow.joblog import job_log

shard = snakemake.wildcards.shard
options = snakemake.params.options
with job_log(snakemake.log[0]) as log:
    # The demo's urls name a host that only our loopback proxy answers for.
    server = serve_demo(Path(snakemake.input.demo[0]) / "images") if snakemake.input.demo else contextlib.nullcontext()
    with server as proxy:
        summary = download_shards(
            snakemake.input.table,
            [shard],
            shard_size=options["shard_size"],
            out_dir=str(Path(snakemake.output.tar).parent),
            staging_dir=snakemake.params.staging,
            options=options,
            proxy=proxy,
            extra_cols=snakemake.params.extra_cols,
        )
    log.info("shard %s: %s", shard, summary)
