# Pool stage: make the canonical pool table (uid, url, caption) and download it into shards.
# Existing img2dataset shards (pool.source: shards) skip this file entirely.


if SOURCE == "demo":

    rule demo_pool:
        output:
            directory(R("demo")),
        params:
            seed=config["seed"],
            demo=config["pool"]["demo"],
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/demo_pool.log"),
        benchmark:
            R("benchmarks/demo_pool.tsv")
        script:
            "../scripts/demo_pool.py"


if SOURCE != "shards":

    rule pool_table:
        input:
            pool_source_input,
        output:
            table=R("pool/urls.parquet"),
            stats=R("pool/pool_stats.json"),
        params:
            pool=config["pool"],
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/pool_table.log"),
        benchmark:
            R("benchmarks/pool_table.tsv")
        script:
            "../scripts/pool_table.py"

    rule download:
        input:
            table=R("pool/urls.parquet"),
            demo=demo_root_input,
        output:
            # img2dataset's NNNNN.tar + .parquet + _stats.json for each shard of the chunk
            directory(R("shards/{chunk}")),
        params:
            shards=lambda wc: PLAN.chunks[wc.chunk],
            options=config["download"],
            extra_cols=config["pool"]["url_list"]["extra_cols"] if SOURCE == "url_list" else [],
            # outside the output directory: Snakemake clears an incomplete output on rerun, but
            # img2dataset's incremental mode resumes from what is here
            staging=lambda wc: R(f"download/staging/{wc.chunk}"),
            # the downloaded shards themselves, linked into the output: Snakemake deletes the
            # output before a rerun, and a web pool must never be downloaded again from scratch
            store=lambda wc: R(f"download/store/{wc.chunk}"),
        threads: config["download"]["processes"]
        resources:
            mem_mb=2000,
        group:
            "download"
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/download/{chunk}.log"),
        benchmark:
            R("benchmarks/download/{chunk}.tsv")
        script:
            "../scripts/download.py"

    rule download_summary:
        input:
            expand(R("shards/{chunk}"), chunk=CHUNKS),
        params:
            stats=lambda wc, input: [os.path.join(d, f"{s}_stats.json") for d, c in zip(input, CHUNKS) for s in PLAN.chunks[c]],
        output:
            summary=R("download/summary.json"),
            plot=report(
                R("download/summary.png"),
                caption="../report/download_summary.rst",
                category="1. Pool",
                labels={"figure": "download outcomes"},
            ),
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/download_summary.log"),
        script:
            "../scripts/download_summary.py"
