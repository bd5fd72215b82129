# Embed stage: caption embeddings per chunk of shards, aligned with a uid table (captions only,
# no images decoded).


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
