# Train stage (docs/method.md §4) through open_clip_train: the seed model on all kept data for the
# first train.seed_epochs of a train.schedule_epochs schedule; each expert resumes from the seed on
# its own shards for the rest; the dense baseline resumes from the seed on all data for the experts'
# total compute. A run's checkpoints live in train/runs/<model>/ (not a declared output, so a failed
# or killed job keeps them and the rerun resumes); the published checkpoint appears when training
# ends.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=R("models/{model}.pt"),
        meta=R("models/{model}.json"),
    wildcard_constraints:
        model=one_of(MODELS),
    params:
        train=TRAIN,
        num_experts=config["cluster"]["num_experts"],
        run_dir=lambda wc: R(f"train/runs/{wc.model}"),
        gpus=TRAIN_GPUS,
        nodes=config["train"]["nodes"],
        seed=config["seed"],
    threads: TRAIN["workers"] + 1
    resources:
        **train_resources(TRAIN_GPUS),
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/train/{model}.log"),
    benchmark:
        R("benchmarks/train/{model}.tsv")
    script:
        "../scripts/train_model.py"

