# Ensemble stage (docs/method.md §5) in two steps: routing (ensemble_weights: task-adaptive expert
# weights from each task's class names or captions, the clustering text encoder and the fine
# centers; once per task, no model runs) then combining (ensemble: every arm — MoDE, uniform, top-1,
# each expert, the oracle, seed, dense, and the control arms dense_1x and random_split — from the
# saved logits only, and the claims table with bootstrap intervals). Then the report's tables and
# figures.


rule ensemble_weights:
    input:
        tasks=TASK_INPUT,
        # the added experts' tasks and the grown cluster model (grow.experts), when there are any
        **GROWN_TASK_INPUT,
        **ENSEMBLE_CLUSTER_MODEL,
    output:
        directory(R("ensemble/routing")),
    params:
        tasks=ensemble_tasks,
        cluster=staged_cluster_model,
        # the class-name encoder: the clustering's (for precomputed features, the open_clip text tower of their space)
        embed=class_name_encoder_options(config["embed"]),
        ensemble=config["ensemble"],
        # where the grown cluster model lies, for modeflow.mixture (without grow: cluster/)
        **({"cluster_model_dir": "grow/cluster"} if GROWN else {}),
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/ensemble/weights.log"),
    benchmark:
        R("benchmarks/ensemble/weights.tsv")
    script:
        "../scripts/ensemble_weights.py"


rule ensemble:
    input:
        evals=expand(R("eval/{model}"), model=MODELS),
        routing=R("ensemble/routing"),
        tasks=TASK_INPUT,
        **GROWN_TASK_INPUT,
        **({"grown_evals": grown_evals()} if GROWN else {}),
        **ENSEMBLE_CLUSTER_MODEL,
        # the demo's domain -> expert map from its ground truth, for claim (a) (modeflow.demo.checks)
        **({"domain_experts": R("cluster/demo_scores.json")} if SOURCE == "demo" and config["evaluate"]["tasks"] == "demo" else {}),
    output:
        summary_csv=R("ensemble/summary.csv"),
        summary_md=R("ensemble/summary.md"),
        arms=R("ensemble/arms.jsonl"),
        claims=R("ensemble/claims.json"),
        claims_csv=R("ensemble/claims.csv"),
        per_sample=directory(R("ensemble/per_sample")),
    params:
        eval_dirs=ensemble_eval_dirs,
        tasks=ensemble_tasks,
        cluster=staged_cluster_model,
        # claim (a) on an added expert's tasks: it should be the best expert there
        **({"grown_owners": {t: g.expert for g in GROWN.values() for t in g.tasks}} if GROWN else {}),
        random_split=[m for m in MODELS if is_random_model(m)],
        domains=list(config["pool"]["demo"]["domains"]) if SOURCE == "demo" else [],
        resamples=config["ensemble"]["bootstrap_samples"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/ensemble/ensemble.log"),
    benchmark:
        R("benchmarks/ensemble/ensemble.tsv")
    script:
        "../scripts/ensemble.py"


rule results_report:
    input:
        summary_csv=R("ensemble/summary.csv"),
        claims=R("ensemble/claims.json"),
        routing=R("ensemble/routing"),
        train_meta=expand(R("models/{model}.json"), model=MODELS),
    output:
        table=report(
            R("ensemble/summary.html"),
            caption="../report/ensemble_summary.rst",
            category="3. Experts",
            labels={"stage": "ensemble", "item": "summary table"},
        ),
        weights=report(
            R("ensemble/weights.png"),
            caption="../report/ensemble_weights.rst",
            category="3. Experts",
            labels={"stage": "ensemble", "item": "weights per task"},
        ),
        accuracy=report(
            R("ensemble/accuracy.png"),
            caption="../report/ensemble_accuracy.rst",
            category="3. Experts",
            labels={"stage": "ensemble", "item": "accuracy per arm"},
        ),
        curves=report(
            R("train/curves.png"),
            caption="../report/train_curves.rst",
            category="3. Experts",
            labels={"stage": "train", "item": "training curves"},
        ),
        costs=R("train/costs.json"),
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/ensemble/report.log"),
    script:
        "../scripts/results_report.py"



if SOURCE == "demo":

    rule ensemble_demo_checks:
        input:
            summary_csv=R("ensemble/summary.csv"),
            routing=R("ensemble/routing"),
            cluster_scores=R("cluster/demo_scores.json"),
            costs=R("train/costs.json"),
        output:
            report(
                R("ensemble/demo_checks.json"),
                caption="../report/ensemble_demo_checks.rst",
                category="3. Experts",
                labels={"stage": "ensemble", "item": "demo checks"},
            ),
        params:
            domains=list(config["pool"]["demo"]["domains"]),
            arm="mode",  # MoDE, with the weights ensemble.weights chooses
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/ensemble/demo_checks.log"),
        script:
            "../scripts/ensemble_demo_checks.py"
