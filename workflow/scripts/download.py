"""Snakemake adapter: download one chunk of pool shards with img2dataset (modeflow.pool.download)."""
import contextlib
from pathlib import Path

from modeflow.pool.download import download_shards
from modeflow.demo.httpserver import serve_demo
from modeflow.common.joblog import job_log


def main(smk) -> None:
    options = smk.params.options
    with job_log(smk.log[0]) as log:
        # The demo's urls name a host that only our loopback proxy answers for.
        demo = smk.input.demo
        server = serve_demo(Path(demo[0])) if demo else contextlib.nullcontext()
        with server as proxy:
            summary = download_shards(
                smk.input.table,
                list(smk.params.shards),
                shard_size=options["shard_size"],
                out_dir=smk.output[0],
                staging_dir=smk.params.staging,
                store_dir=smk.params.store,
                options=options,
                proxy=proxy,
                extra_cols=smk.params.extra_cols,
            )
        log.info("chunk %s: %s", smk.wildcards.chunk, summary)


# img2dataset's workers are spawned: each re-runs this file as __mp_main__ (without Snakemake's
# preamble), so the work must only start in the real main process.
if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
