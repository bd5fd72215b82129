# Shared set-up: the config, resolved once into every global the rule files use
# (modeflow.config.resolve), path helpers and input functions. Every job re-parses this file
# (clusters included), so it only does cheap work.
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError

try:
    import modeflow  # noqa: F401  (installed by `make setup`)
except ImportError:  # running from a checkout without installing: use the source tree
    sys.path.insert(0, str(Path(workflow.current_basedir).parents[1] / "src"))

from modeflow.common.errors import ModeflowError
from modeflow.common.names import expert_of_model, is_random_model, random_of_model
from modeflow.common.storage import check_default_storage
from modeflow.config import resolve
from modeflow.config.files import read_config_file
from modeflow.filter.subsets import SEED_SCORER, from_metadata, subset_inputs
from modeflow.embed.precomputed import class_name_encoder_options
from modeflow.pool.datacomp import CommonPool

try:  # with --default-storage-provider s3: fail in seconds on missing/wrong credentials or bucket
    check_default_storage(workflow)
except ModeflowError as exc:
    raise WorkflowError(str(exc)) from None


def uses_remote_storage() -> bool:
    """Whether jobs get their inputs staged from a storage provider (--default-storage-provider)."""
    settings = getattr(workflow, "storage_settings", None)
    return bool(settings and settings.default_storage_provider)


# The demo's config, unless config files are given on the command line (--configfile): those
# replace it instead of being merged over it, so a user's config holds what it says plus the
# schema's defaults. The path is relative to the working directory, Snakemake's convention
# (`--directory .test` reads .test/config/config.yaml).
DEMO_CONFIGFILE = "config/config.yaml"
if not workflow.overwrite_configfiles:
    if os.path.exists(DEMO_CONFIGFILE):
        try:  # a syntax error is named by file, line and column (Snakemake's own message has neither)
            read_config_file(DEMO_CONFIGFILE)
        except ModeflowError as exc:
            raise WorkflowError(str(exc)) from None

    configfile: DEMO_CONFIGFILE


try:  # the files a config names are read by the process that starts the run, before any job
    SETTINGS = resolve(config, check_files=workflow.is_main_process and not uses_remote_storage())
except ModeflowError as exc:
    raise WorkflowError(str(exc)) from None
config.update(SETTINGS.config)  # every default filled in, every mapping's keys sorted

PLAN = SETTINGS.plan
SOURCE = SETTINGS.source
SHARDS_DIR = SETTINGS.shards_dir  # the user's existing shards (pool.source shards, or datacomp with shards)
# a CommonPool's metadata directory and parquets (pool.source datacomp)
DATACOMP_METADATA = config["pool"]["datacomp"]["metadata"] if SOURCE == "datacomp" else None
DATACOMP_PARQUETS = list(CommonPool.open(DATACOMP_METADATA).parquets) if DATACOMP_METADATA else []
CHUNKS = SETTINGS.chunks  # per-shard stages run one job per chunk of shards
SUBSETS = SETTINGS.subsets
FILTER_USE = SETTINGS.filter_use
SEED_SUBSET = SETTINGS.seed_subset
CLUSTER_MODEL = SETTINGS.cluster_model
EXPERTS = SETTINGS.experts
MODELS = SETTINGS.models
CONTROL_ARMS = SETTINGS.control_arms  # train.control_arms resolved: random_split, dense_1x
TRAIN = SETTINGS.train
TRAIN_GPUS = config["train"]["gpus"]
TASKS = SETTINGS.tasks
TASK_INPUT = SETTINGS.task_inputs
# experts added to the finished mixture (grow.experts), by their label and by their expert name.
# Rules add grow's inputs and params only when there are any, so that a run without grow keeps the
# records of its finished jobs (a changed param or input list would rerun them).
GROWN = {g.label: g for g in SETTINGS.grown}
GROWN_BY_EXPERT = {g.expert: g for g in SETTINGS.grown}
GROWN_TASKS = SETTINGS.grown_tasks
GROWN_EVALUATED = [label for label, g in GROWN.items() if g.tasks]  # the additions that bring tasks
# the added experts' task directories, as a named input of the ensemble rules (none without grow)
GROWN_TASK_INPUT = {"grown_tasks": list(GROWN_TASKS.values())} if GROWN else {}
ENSEMBLE_CLUSTER_MODEL = SETTINGS.ensemble_cluster_model  # the grown cluster model, else CLUSTER_MODEL


def one_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(re.escape(name) for name in names) or "^$"


wildcard_constraints:
    shard=r"[0-9A-Za-z_-]+",
    chunk=r"[0-9A-Za-z_-]+",
    expert=one_of(EXPERTS),
    label=one_of(GROWN),
    grown_expert=one_of(GROWN_BY_EXPERT),


def R(path):
    """A path under the results directory."""
    return SETTINGS.result(path)


def shard_file(shard, ext="tar"):
    """Where a pool shard's file lives (ext: "tar", "parquet" or a full suffix like "_stats.json"):
    the user's directory for existing shards, else its chunk's download directory."""
    suffix = ext if ext[0] in "._" else f".{ext}"
    if SHARDS_DIR:
        return f"{SHARDS_DIR}/{shard}{suffix}"
    return R(f"shards/{PLAN.chunk_of[shard]}/{shard}{suffix}")


def chunk_input(wildcards):
    """What a per-chunk job depends on: the download job's directory, or the existing tars."""
    if SHARDS_DIR:
        return [shard_file(shard) for shard in PLAN.chunks[wildcards.chunk]]
    return [R(f"shards/{wildcards.chunk}")]


def chunk_files(wildcards, input, ext="tar"):
    """A chunk's shard files as this job sees them, for scripts (inputs may be a directory).
    Built from `input`, not from R(...): under remote storage (--default-storage-provider) only
    inputs are staged, to local copies whose paths differ from the results/ names."""
    shards = PLAN.chunks[wildcards.chunk]
    if SHARDS_DIR:
        return list(input)[: len(shards)] if ext == "tar" else [shard_file(s, ext) for s in shards]
    return [os.path.join(input[0], f"{shard}.{ext}") for shard in shards]


def chunk_tars(wildcards, input):
    return chunk_files(wildcards, input)


def all_shard_inputs() -> list:
    """Every pool shard, as inputs of the jobs that copy from all of them (reshard phase 2): the
    download directories, or the user's existing tars.

    Existing tars are listed one by one only under remote storage, where only inputs are staged
    into a job. On a shared filesystem the job reads them in place from their directory (the
    script globs a directory entry's *.tar), marked ancient as its mtime says nothing about the
    tars' contents: each tar stays an input of its chunk's reshard_part / reshard_pooled_part,
    whose index this job reads, so a changed or missing tar still reruns or stops it. (10,000 tars
    on each of 17 jobs were about half of `snakemake -n`'s time: Snakemake resolves, stats, sizes
    and prints every input of every job.)
    """
    if not SHARDS_DIR:
        return expand(R("shards/{chunk}"), chunk=CHUNKS)
    if uses_remote_storage():
        return [shard_file(shard) for shard in PLAN.shards]
    return [ancient(SHARDS_DIR)]


def pool_source_input(wildcards):
    """The file the pool table is built from, so a changed url list reruns the pool step."""
    if SOURCE == "demo":
        return R("demo")
    if SOURCE == "url_list":
        return config["pool"]["url_list"]["path"]
    if SOURCE == "datacomp":
        return DATACOMP_PARQUETS
    return config["pool"]["image_folder"]["captions"]


def demo_root_input(wildcards):
    """The demo's image folder, which the download step serves over loopback HTTP."""
    return [R("demo")] if SOURCE == "demo" else []


def uid_table(wildcards):
    """A chunk's uid -> (shard, key) table, what the filters and the reshard read: for a CommonPool
    its pool index, built from the shards' own parquets (no encoder runs before the reshard), else
    the embed stage's uid table."""
    if SOURCE == "datacomp":
        return R(f"pool/index/{wildcards.chunk}.parquet")
    return R(f"embed/{wildcards.chunk}.parquet")


def metadata_files(features=False):
    """A CommonPool's metadata parquets, with their npz files when `features`."""
    npz = [CommonPool.npz_of(p) for p in DATACOMP_PARQUETS] if features else []
    return DATACOMP_PARQUETS + npz


def final_outputs():
    """What `all` builds: each stage's last products and reports."""
    return SETTINGS.final_targets


# every chunk's shards (download directories, the user's tars or their directory): what reshard
# phase 2 copies from
ALL_SHARD_INPUTS = all_shard_inputs()
RESHARD_SUBSET = R(f"filter/subsets/{FILTER_USE}.npy")


# --- input functions of the experts stages ---


def clip_scorer(name):
    """(open_clip model name, checkpoint path) that scores clip_score subset `name`."""
    spec = SUBSETS[name]
    scorer = spec.get("checkpoint", SEED_SCORER)  # ("checkpoint" is a Snakemake keyword at line start)
    if scorer == SEED_SCORER:
        return TRAIN["model"], R("models/seed.pt")
    return spec.get("model") or TRAIN["model"], scorer


def subset_input(wildcards):
    """The files subset `name` is computed from (modeflow.filter.subsets.subset_inputs)."""
    return subset_inputs(
        SUBSETS,
        wildcards.name,
        attributes=expand(R("filter/attributes/{chunk}.parquet"), chunk=CHUNKS),
        vectors=expand(R("embed/{chunk}.npy"), chunk=CHUNKS),
        uid_tables=expand(R("embed/{chunk}.parquet"), chunk=CHUNKS),
        subset_path=lambda dep: R(f"filter/subsets/{dep}.npy"),
        clip_scores=lambda name: expand(R("filter/clip_scores/{name}/{chunk}.parquet"), name=name, chunk=CHUNKS),
        pool_source=SOURCE,
        metadata_files=metadata_files,
    )


def subset_metadata(wildcards):
    """The CommonPool metadata directory a metadata baseline reads, else None (modeflow.filter.subsets.from_metadata)."""
    return DATACOMP_METADATA if from_metadata(SUBSETS[wildcards.name], SOURCE) else None


def train_resources(gpus):
    """Resources of a training job: GPUs only when asked for (CPU runs declare none)."""
    res = {"mem_mb": config["train"]["mem_mb"], "runtime": config["train"]["runtime"]}
    nodes = config["train"]["nodes"]
    if gpus:
        res.update(gpu=gpus * nodes, nodes=nodes)
    if nodes > 1:
        # the slurm executor then runs the job's command in the batch script itself (no srun job
        # step around it), so the launcher's own `srun` can start one torchrun per node
        res.update(mpi="srun", tasks=nodes)
    return res


def train_inputs(wildcards):
    """Data (and the seed checkpoint to resume from) of a model: the seed's subset; all kept data
    for the dense models (equal compute, and the control arm dense_1x); an expert's cluster; a
    random-split expert's part (the control arm random_split)."""
    model = wildcards.model
    if model == "seed":
        return {"data": R(f"pooled/{SEED_SUBSET}")}
    if model in ("dense", "dense_1x"):
        data = R(f"pooled/{FILTER_USE}")
    elif is_random_model(model):
        data = R(f"random_split/experts/{random_of_model(model)}")
    else:
        data = R(f"experts/{expert_of_model(model)}")
    return {"data": data, "init": R("models/seed.pt"), "init_meta": R("models/seed.json")}


def staged_tasks(wildcards, input):
    """{task: directory} as this job sees them (under remote storage, inputs are local copies)."""
    if config["evaluate"]["tasks"] == "demo":
        return {name: os.path.join(input.tasks[0], "tasks", name) for name in TASKS}
    return dict(zip(TASKS, input.tasks))


def ensemble_tasks(wildcards, input):
    """{task: directory} of the ensemble rules: the configured tasks, then the added experts'."""
    tasks = staged_tasks(wildcards, input)
    if GROWN:
        tasks |= dict(zip(GROWN_TASKS, input.grown_tasks))
    return tasks


def grown_tars(wildcards):
    """An added expert's new shards (grow.experts[].shards)."""
    return list(GROWN[wildcards.label].tars)


def grown_evals():
    """Every model's evaluation on each addition's tasks, addition by addition (those with tasks)."""
    return [R(f"grow/{label}/eval/{model}") for label in GROWN_EVALUATED for model in MODELS]


def ensemble_eval_dirs(wildcards, input):
    """{model: its evaluation directory}, or with added experts {model: [eval/<model>/, then
    grow/<name>/eval/<model>/ per addition]} (modeflow.ensemble.combine.task_eval_dir)."""
    dirs = dict(zip(MODELS, input.evals))
    if not GROWN:
        return dirs
    grown = {model: [path] for model, path in dirs.items()}
    for path in input.grown_evals:  # .../grow/<name>/eval/<model>
        grown[os.path.basename(path)].append(path)
    return grown


def staged_cluster_model(wildcards, input):
    """The cluster model's files as this job sees them (modeflow.cluster.model.load_cluster_model)."""
    return {key: input[key] for key in CLUSTER_MODEL}


def health_inputs(wildcards):
    """What the run-health report reads: every stage's stats and each model's training data."""
    inputs = {
        "reshard_chunks": expand(R("reshard/index/{chunk}.json"), chunk=CHUNKS),
        "reshard_summary": R("reshard/summary.json"),
        # each model's training data directory (train_inputs), in MODELS' order
        "training_data": [train_inputs(SimpleNamespace(model=model))["data"] for model in MODELS],
    }
    if not SHARDS_DIR:  # existing shards have neither a download nor a pool table
        inputs |= {"download_summary": R("download/summary.json"), "pool_stats": R("pool/pool_stats.json")}
    if SOURCE == "datacomp":  # shard samples the metadata lacks (rule pool_index)
        inputs["pool_index"] = expand(R("pool/index/{chunk}.json"), chunk=CHUNKS)
    return inputs
