# Embed stage: caption embeddings per chunk of shards, aligned with a uid table (captions only,
# no images decoded). With embed.encoder: precomputed, a CommonPool's npz features instead: no
# encoder runs, no tar is read (modeflow.embed.precomputed).


if config["embed"]["encoder"] == "precomputed":

    rule embed:
        input:
            index=R("pool/index/{chunk}.parquet"),
            npz=[CommonPool.npz_of(parquet) for parquet in DATACOMP_PARQUETS],
        output:
            vectors=R("embed/{chunk}.npy"),
            uids=R("embed/{chunk}.parquet"),
        params:
            embed=config["embed"],
            metadata=DATACOMP_METADATA,
        resources:
            mem_mb=3000,
        group:
            "embed"
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/embed/{chunk}.log"),
        benchmark:
            R("benchmarks/embed/{chunk}.tsv")
        script:
            "../scripts/embed_precomputed.py"


else:

    rule embed:
        input:
            chunk_input,
        output:
            vectors=R("embed/{chunk}.npy"),
            uids=R("embed/{chunk}.parquet"),
        params:
            tars=chunk_tars,
            embed=config["embed"],
        threads: 2
        resources:
            mem_mb=3000,
        group:
            "embed"
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/embed/{chunk}.log"),
        benchmark:
            R("benchmarks/embed/{chunk}.tsv")
        script:
            "../scripts/embed.py"
