# Embed stage: caption embeddings per shard, aligned with the shard's uids (captions only, no images).


rule embed:
    input:
        tar=lambda wc: shard_file(wc.shard),
    output:
        vectors=R("embed/{shard}.npy"),
        uids=R("embed/{shard}.parquet"),
    params:
        embed=config["embed"],
    threads: 2
    resources:
        mem_mb=3000,
    group:
        "embed"
    conda:
        "../../envs/modeflow.yaml"
    log:
        R("logs/embed/{shard}.log"),
    benchmark:
        R("benchmarks/embed/{shard}.tsv")
    script:
        "../scripts/embed.py"
