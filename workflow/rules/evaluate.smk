# Evaluate stage: every model (seed, each expert, dense) on every task — zero-shot classification
# and image-text retrieval in clip_benchmark's wds layout. Per-task logits are saved so the
# ensemble never runs a model. A job works in eval_work/<model>/ (not a declared output, so it
# survives a failure), appending each finished task to its results.jsonl: a rerun skips those
# tasks. Its declared output eval/<model>/ is a copy made at the end (what remote storage uploads).


rule evaluate:
    input:
        tasks=TASK_INPUT,
        checkpoint=R("models/{model}.pt"),
    output:
        directory(R("eval/{model}")),
    wildcard_constraints:
        model=one_of(MODELS),
    params:
        model_name=TRAIN["model"],
        tasks=staged_tasks,
        work_dir=lambda wc: R(f"eval_work/{wc.model}"),
        batch_size=config["evaluate"]["batch_size"],
        device=config["evaluate"]["device"],
    threads: 2
    resources:
        mem_mb=4000,
        **({"gpu": 1} if config["evaluate"]["gpus"] else {}),
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/evaluate/{model}.log"),
    benchmark:
        R("benchmarks/evaluate/{model}.tsv")
    script:
        "../scripts/evaluate_model.py"

