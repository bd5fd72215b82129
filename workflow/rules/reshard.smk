# Reshard stage: the chosen subset × the cluster assignment -> one DataComp-layout shard directory
# per expert. Phase 1 (one job per chunk) decides membership from uid tables and records where each
# kept sample's bytes lie; phase 2 (one job per expert) copies those bytes into exact-size shards.


rule reshard_part:
    input:
        chunk_input,
        embed=R("embed/{chunk}.parquet"),
        assign=R("cluster/assign/{chunk}.parquet"),
        subset=RESHARD_SUBSET,
    output:
        index=R("reshard/index/{chunk}.parquet"),
        stats=R("reshard/index/{chunk}.json"),
    params:
        tars=chunk_tars,
        num_experts=config["cluster"]["num_experts"],
        ooc_ratio=config["reshard"]["ooc_ratio"],
        seed=config["seed"],
    resources:
        mem_mb=2000,
    group:
        "reshard"
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/part_{chunk}.log"),
    benchmark:
        R("benchmarks/reshard/part_{chunk}.tsv")
    script:
        "../scripts/reshard_part.py"


rule reshard_expert:
    input:
        index=expand(R("reshard/index/{chunk}.parquet"), chunk=CHUNKS),
        subset=RESHARD_SUBSET,
        # the bytes phase 2 copies: inputs, so remote storage stages them into this job
        shards=ALL_SHARD_INPUTS,
    output:
        directory(R("experts/{expert}")),
    params:
        expert=lambda wildcards: int(wildcards.expert),
        num_experts=config["cluster"]["num_experts"],
        subset_name=config["filter"]["use"],
        reshard=config["reshard"],
        empty_expert=config["cluster"]["empty_expert"],
        seed=config["seed"],
    resources:
        mem_mb=3000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/expert_{expert}.log"),
    benchmark:
        R("benchmarks/reshard/expert_{expert}.tsv")
    script:
        "../scripts/reshard_expert.py"


rule reshard_summary:
    input:
        experts=expand(R("experts/{expert}"), expert=EXPERTS),
        index=expand(R("reshard/index/{chunk}.parquet"), chunk=CHUNKS),
        subset=RESHARD_SUBSET,
    output:
        summary=report(
            R("reshard/summary.json"),
            caption="../report/reshard_summary.rst",
            category="2. Curation",
            labels={"stage": "reshard", "table": "experts"},
        ),
        plot=report(
            R("reshard/experts.png"),
            caption="../report/reshard_experts.rst",
            category="2. Curation",
            labels={"stage": "reshard", "figure": "samples per expert"},
        ),
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/summary.log"),
    script:
        "../scripts/reshard_summary.py"


# The pooled subsets: all kept samples of one subset in one DataComp-layout directory, no cluster
# split — what the seed model (train.seed_subset) and the dense baseline (filter.use) train on.


rule reshard_pooled_part:
    input:
        chunk_input,
        # uid -> (shard, key): a CommonPool's pool index (no embed stage before a pooled reshard), else the embed uid table
        embed=uid_table,
        subset=R("filter/subsets/{subset}.npy"),
    output:
        index=R("reshard/pooled/{subset}/index/{chunk}.parquet"),
        stats=R("reshard/pooled/{subset}/index/{chunk}.json"),
    wildcard_constraints:
        subset=one_of(SUBSETS),
    params:
        tars=chunk_tars,
        num_experts=1,
        ooc_ratio=0.0,
        seed=config["seed"],
    resources:
        mem_mb=2000,
    # one group per subset: the seed's subset and filter.use (downstream of the seed, via clip
    # scores) must not share a group, or the group would depend on itself
    group:
        "reshard_pooled_{subset}"
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/pooled_{subset}_part_{chunk}.log"),
    benchmark:
        R("benchmarks/reshard/pooled_{subset}_part_{chunk}.tsv")
    script:
        "../scripts/reshard_part.py"


rule reshard_pooled:
    input:
        index=lambda wc: expand(R("reshard/pooled/{subset}/index/{chunk}.parquet"), subset=wc.subset, chunk=CHUNKS),
        subset=R("filter/subsets/{subset}.npy"),
        shards=ALL_SHARD_INPUTS,
    output:
        directory(R("pooled/{subset}")),
    wildcard_constraints:
        subset=one_of(SUBSETS),
    params:
        expert=0,
        num_experts=1,
        subset_name=lambda wc: wc.subset,
        label=lambda wc: f"pooled {wc.subset}",
        reshard=dict(config["reshard"], ooc_ratio=0.0),
        empty_expert="error",
        seed=config["seed"],
    resources:
        mem_mb=3000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/pooled_{subset}.log"),
    benchmark:
        R("benchmarks/reshard/pooled_{subset}.tsv")
    script:
        "../scripts/reshard_expert.py"



# The random-split control (train.control_arms: random_split): the same kept data split at random
# into parts of the clusters' sizes (modeflow.reshard.random_split), one job for the whole pool,
# then resharded exactly as the experts are (same ooc ratio, same seed) into random_split/experts/NN/.


rule random_split:
    input:
        embed=expand(R("embed/{chunk}.parquet"), chunk=CHUNKS),
        assign=expand(R("cluster/assign/{chunk}.parquet"), chunk=CHUNKS),
        subset=RESHARD_SUBSET,
    output:
        assign=expand(R("random_split/assign/{chunk}.parquet"), chunk=CHUNKS),
        stats=R("random_split/split.json"),
    params:
        num_experts=config["cluster"]["num_experts"],
        seed=config["seed"],
    resources:
        mem_mb=2000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/reshard/random_split.log"),
    script:
        "../scripts/reshard_random_split.py"


use rule reshard_part as reshard_random_part with:
    input:
        chunk_input,
        embed=R("embed/{chunk}.parquet"),
        assign=R("random_split/assign/{chunk}.parquet"),
        subset=RESHARD_SUBSET,
    output:
        index=R("reshard/random_split/index/{chunk}.parquet"),
        stats=R("reshard/random_split/index/{chunk}.json"),
    group:
        "reshard_random"
    log:
        R("logs/reshard/random_part_{chunk}.log"),
    benchmark:
        R("benchmarks/reshard/random_part_{chunk}.tsv")


use rule reshard_expert as reshard_random_expert with:
    input:
        index=expand(R("reshard/random_split/index/{chunk}.parquet"), chunk=CHUNKS),
        subset=RESHARD_SUBSET,
        shards=ALL_SHARD_INPUTS,
    output:
        directory(R("random_split/experts/{expert}")),
    params:
        expert=lambda wildcards: int(wildcards.expert),
        num_experts=config["cluster"]["num_experts"],
        subset_name=config["filter"]["use"],
        label=lambda wildcards: f"random split {wildcards.expert}",
        reshard=config["reshard"],
        empty_expert=config["cluster"]["empty_expert"],
        seed=config["seed"],
    log:
        R("logs/reshard/random_expert_{expert}.log"),
    benchmark:
        R("benchmarks/reshard/random_expert_{expert}.tsv")
