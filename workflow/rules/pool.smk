# Pool stage: make the canonical pool table (uid, url, caption) and download it into shards.
# Existing img2dataset shards (pool.source: shards, or datacomp with pool.datacomp.shards) skip the
# download. A CommonPool (pool.source: datacomp) also gets a per-chunk index from the shards' parquets.


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


if not SHARDS_DIR:

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
            options=SETTINGS.download_options,
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


if SOURCE == "datacomp":

    rule pool_index:
        """uid -> (shard, key, metadata part, row) of a chunk's samples, from the shards' own img2dataset
        parquets: what the filters, the precomputed embeddings and the pooled reshard read (no encoder
        runs); shard samples whose uid the metadata lacks are counted in the json (no metadata row)."""
        input:
            chunk_input,
            metadata=DATACOMP_PARQUETS,
        output:
            index=R("pool/index/{chunk}.parquet"),
            stats=R("pool/index/{chunk}.json"),
        params:
            parquets=lambda wc, input: chunk_files(wc, input, "parquet"),
            metadata=DATACOMP_METADATA,
        resources:
            mem_mb=2000,
        group:
            "pool_index"
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/pool_index/{chunk}.log"),
        script:
            "../scripts/pool_index.py"
