# Grow stage (docs/method.md §13): experts added to a finished mixture (grow.experts). Each addition's
# new shards are embedded with the clustering's text encoder and assigned with the finished cluster
# model; its cluster (chosen fine clusters, or new fine clusters of far samples) is resharded into
# experts/NN/ (NN = cluster.num_experts + its place); the train and evaluate rules then train it
# from the seed and evaluate it like any expert. Every model is also evaluated on the addition's
# tasks (grow/<name>/eval/<model>/), and the ensemble routes with the grown cluster model
# (grow/cluster/). Nothing the finished mixture built is an output here, so nothing of it reruns.


if GROWN:

    rule grow_embed:
        input:
            tars=grown_tars,
        output:
            vectors=R("grow/{label}/embed.npy"),
            uids=R("grow/{label}/embed.parquet"),
        params:
            embed=config["embed"],
        threads: 2
        resources:
            mem_mb=3000,
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/grow/{label}/embed.log"),
        benchmark:
            R("benchmarks/grow/{label}/embed.tsv")
        script:
            "../scripts/grow_embed.py"

    rule grow_cluster:
        input:
            vectors=R("grow/{label}/embed.npy"),
            uids=R("grow/{label}/embed.parquet"),
            # the mixture's own uids: the new data must not repeat them
            pool_uids=expand(R("embed/{chunk}.parquet"), chunk=CHUNKS),
            **CLUSTER_MODEL,
        output:
            assign=R("grow/{label}/assign.parquet"),
            members=R("grow/{label}/members.npy"),
            fine_centers=R("grow/{label}/fine_centers.npy"),
            stats=R("grow/{label}/cluster.json"),
        params:
            grown=lambda wc: GROWN[wc.label].cluster.params(),
            cluster=config["cluster"],
            seed=config["seed"],
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/grow/{label}/cluster.log"),
        script:
            "../scripts/grow_cluster.py"

    rule grow_reshard_part:
        input:
            tars=grown_tars,
            embed=R("grow/{label}/embed.parquet"),
            subset=R("grow/{label}/members.npy"),
        output:
            index=R("grow/{label}/reshard/index.parquet"),
            stats=R("grow/{label}/reshard/index.json"),
        params:
            seed=config["seed"],
        resources:
            mem_mb=2000,
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/grow/{label}/reshard_part.log"),
        script:
            "../scripts/grow_reshard_part.py"

    rule grow_reshard_expert:
        input:
            index=lambda wc: [R(f"grow/{GROWN_BY_EXPERT[wc.grown_expert].label}/reshard/index.parquet")],
            subset=lambda wc: R(f"grow/{GROWN_BY_EXPERT[wc.grown_expert].label}/members.npy"),
            shards=lambda wc: grown_tars(SimpleNamespace(label=GROWN_BY_EXPERT[wc.grown_expert].label)),
        output:
            directory(R("experts/{grown_expert}")),
        params:
            expert=0,
            num_experts=1,
            subset_name=lambda wc: f"grow {GROWN_BY_EXPERT[wc.grown_expert].label}",
            label=lambda wc: f"added expert {wc.grown_expert} ({GROWN_BY_EXPERT[wc.grown_expert].label})",
            # no out-of-cluster copies: those would come from the finished mixture's data
            reshard=dict(config["reshard"], ooc_ratio=0.0),
            empty_expert="error",
            seed=config["seed"],
        resources:
            mem_mb=3000,
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/grow/expert_{grown_expert}.log"),
        benchmark:
            R("benchmarks/grow/expert_{grown_expert}.tsv")
        script:
            "../scripts/reshard_expert.py"

    use rule evaluate as grow_evaluate with:
        input:
            tasks=lambda wc: list(GROWN[wc.label].tasks.values()),
            checkpoint=R("models/{model}.pt"),
        output:
            directory(R("grow/{label}/eval/{model}")),
        params:
            model_name=TRAIN["model"],
            tasks=lambda wc, input: dict(zip(GROWN[wc.label].tasks, input.tasks)),
            work_dir=lambda wc: R(f"grow/{wc.label}/eval_work/{wc.model}"),
            batch_size=config["evaluate"]["batch_size"],
            device=config["evaluate"]["device"],
        log:
            R("logs/grow/{label}/evaluate_{model}.log"),
        benchmark:
            R("benchmarks/grow/{label}/evaluate_{model}.tsv")

    rule grow_cluster_model:
        input:
            added_centers=expand(R("grow/{label}/fine_centers.npy"), label=GROWN),
            added_stats=expand(R("grow/{label}/cluster.json"), label=GROWN),
            **CLUSTER_MODEL,
        output:
            **ENSEMBLE_CLUSTER_MODEL,
        params:
            grown=[g.cluster.params() for g in GROWN.values()],
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/grow/cluster_model.log"),
        script:
            "../scripts/grow_cluster_model.py"
