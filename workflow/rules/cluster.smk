# Cluster stage (docs/method.md §2-3): fine k-means on a sample of the caption embeddings, coarse
# k-means of the fine centers (one coarse cluster = one expert), then every sample assigned per
# chunk.


rule cluster_fit:
    input:
        vectors=expand(R("embed/{chunk}.npy"), chunk=CHUNKS),
    output:
        **CLUSTER_MODEL,
    params:
        cluster=config["cluster"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/cluster/fit.log"),
    benchmark:
        R("benchmarks/cluster/fit.tsv")
    script:
        "../scripts/cluster_fit.py"


rule assign:
    input:
        vectors=R("embed/{chunk}.npy"),
        uids=R("embed/{chunk}.parquet"),
        **CLUSTER_MODEL,
    output:
        R("cluster/assign/{chunk}.parquet"),
    threads: 1
    resources:
        mem_mb=1500,
    group:
        "assign"
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/cluster/assign/{chunk}.log"),
    benchmark:
        R("benchmarks/cluster/assign/{chunk}.tsv")
    script:
        "../scripts/cluster_assign.py"


rule cluster_summary:
    input:
        assign=expand(R("cluster/assign/{chunk}.parquet"), chunk=CHUNKS),
        vectors=expand(R("embed/{chunk}.npy"), chunk=CHUNKS),
    output:
        summary=R("cluster/summary.json"),
        sizes=report(
            R("cluster/sizes.png"),
            caption="../report/cluster_sizes.rst",
            category="2. Curation",
            labels={"stage": "cluster", "figure": "cluster sizes"},
        ),
        projection=report(
            R("cluster/projection.png"),
            caption="../report/cluster_projection.rst",
            category="2. Curation",
            labels={"stage": "cluster", "figure": "embedding projection"},
        ),
    params:
        cluster=config["cluster"],
        seed=config["seed"],
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/cluster/summary.log"),
    script:
        "../scripts/cluster_summary.py"



if SOURCE == "demo":

    rule cluster_demo_scores:
        input:
            assign=expand(R("cluster/assign/{chunk}.parquet"), chunk=CHUNKS),
            demo=R("demo"),
        output:
            scores=R("cluster/demo_scores.json"),
            plot=report(
                R("cluster/demo_scores.png"),
                caption="../report/cluster_demo_scores.rst",
                category="2. Curation",
                labels={"stage": "cluster", "figure": "experts vs demo domains"},
            ),
        params:
            ground_truth=lambda wc, input: os.path.join(input.demo, "ground_truth.parquet"),
            num_experts=config["cluster"]["num_experts"],
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/cluster/demo_scores.log"),
        script:
            "../scripts/cluster_demo_scores.py"
