# Train stage (MoDE §4) through open_clip_train: the seed model on all kept data for the first
# train.seed_epochs of a train.schedule_epochs schedule; each expert resumes from the seed on its own
# shards for the rest; the dense baseline resumes from the seed on all data for the experts' total
# compute. A run's checkpoints live in train/runs/<model>/ (not a declared output, so a failed or
# killed job keeps them and the rerun resumes); the published checkpoint appears when training ends.
from modeflow.filter.subsets import depends_on_seed_scores
from modeflow.train.recipe import resolve_train_config

# the recipe keys of config `train` (null = the preset's value) go to open_clip_train; the others
# (gpus, nodes, mem_mb, runtime, device, seed_subset) are about where and on what it runs
RECIPE_KEYS = ("preset", "model", "batch_size", "lr", "warmup", "wd", "schedule_epochs", "seed_epochs",
               "samples_per_epoch", "precision", "grad_checkpointing", "local_loss", "gather_with_grad",
               "workers", "sample_shuffle", "extra_args", "dense")
try:
    TRAIN = resolve_train_config(
        {k: v for k, v in config["train"].items() if k in RECIPE_KEYS and v is not None} | {"seed": config["seed"]}
    )
except ModeflowError as exc:
    raise WorkflowError(str(exc)) from None

SEED_SUBSET = config["train"]["seed_subset"] or FILTER_USE
if SEED_SUBSET not in SUBSETS:
    raise WorkflowError(f"train.seed_subset: {SEED_SUBSET!r} is not a subset; defined: {sorted(SUBSETS)}")
if depends_on_seed_scores(SUBSETS, SEED_SUBSET):
    raise WorkflowError(
        f"train.seed_subset: {SEED_SUBSET!r} needs clip scores from the seed model itself; set "
        "train.seed_subset to a subset without a seed-scored clip_score (e.g. the basic filters)"
    )

EXPERT_MODELS = [f"expert_{e}" for e in EXPERTS]
MODELS = ["seed"] + EXPERT_MODELS + (["dense"] if TRAIN["dense"] else [])
TRAIN_GPUS = config["train"]["gpus"]


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=R("models/{model}.pt"),
        meta=R("models/{model}.json"),
    wildcard_constraints:
        model="|".join(MODELS),
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
        "../../envs/modeflow.yaml"
    log:
        R("logs/train/{model}.log"),
    benchmark:
        R("benchmarks/train/{model}.tsv")
    script:
        "../scripts/train_model.py"


FINAL_TARGETS.extend(expand(R("models/{model}.pt"), model=MODELS))
