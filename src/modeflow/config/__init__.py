"""The workflow's settings: a config validated, checked and resolved, once, into everything the
rules use: the shard plan, experts, models, subsets, evaluation tasks, training recipe and the
paths of the outputs the workflow builds.

The Snakefile (workflow/rules/common.smk) and `modeflow check-config` both call `resolve`, so a
config passes both or neither, and every check runs before any job does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modeflow.cluster.model import MODEL_FILES, check_cluster_config
from modeflow.common.errors import ConfigError
from modeflow.common.names import (CONTROL_ARMS, DENSE_1X_MODEL, DENSE_MODEL, RANDOM_SPLIT, SEED_MODEL,
                                   expert_model, expert_name, random_model)
from modeflow.config.canonical import canonical
from modeflow.config.inputs import check_inputs, check_task_dirs
from modeflow.config.references import check_references, seed_subset
from modeflow.config.schema import validate_config
from modeflow.evaluate.main_metric import datacomp_task_dirs
from modeflow.grow.spec import GrownExpert, resolve_grown
from modeflow.pool.plan import ShardPlan, existing_shards_dir, plan_shards
from modeflow.pool.download_presets import check_image_side, resolve_download
from modeflow.train.recipe import resolve_train_config

# `train` keys about where a training job runs and on which data; the section's other keys are the
# recipe (null: the preset's value)
_TRAIN_RUN_KEYS = ("gpus", "nodes", "mem_mb", "runtime", "seed_subset", "keep_superseded_runs", "control_arms")
# the demo pool's held-out tasks besides one per domain (written by modeflow.demo)
_DEMO_EXTRA_TASKS = ("mixed", "retrieval")


@dataclass(frozen=True)
class Settings:
    """A resolved config. The config's mappings and the recipe have their keys sorted (see
    modeflow.config.canonical); the subsets and the tasks keep the config's order, which the
    reports follow."""

    config: dict  # the validated config, every default filled in
    plan: ShardPlan
    subsets: dict[str, dict]  # filter.subsets: name -> spec
    filter_use: str  # the subset the experts and the dense baseline train on
    seed_subset: str  # the subset the seed model trains on
    experts: list[str]  # "00", "01", ...: one per coarse cluster
    models: list[str]  # seed, expert_00, ..., the added experts, dense when it is trained, then the control arms' models
    control_arms: list[str]  # train.control_arms resolved (modeflow.common.names.CONTROL_ARMS)
    train: dict  # the training recipe (modeflow.train.recipe.resolve_train_config)
    tasks: dict[str, str]  # evaluation task name -> its directory
    task_inputs: list[str]  # what an evaluation depends on: the demo pool, or the task directories
    grown: list[GrownExpert]  # grow.experts resolved: experts added to the finished mixture

    @property
    def grown_tasks(self) -> dict[str, str]:
        """The added experts' tasks (task name -> directory), evaluated apart from `tasks`."""
        return {name: path for g in self.grown for name, path in g.tasks.items()}

    @property
    def ensemble_cluster_model(self) -> dict[str, str]:
        """The cluster model the ensemble routes with: the grown one when experts were added."""
        if not self.grown:
            return self.cluster_model
        return {key: self.result(f"grow/cluster/{name}") for key, name in MODEL_FILES.items()}

    @property
    def source(self) -> str:
        return self.config["pool"]["source"]

    @property
    def shards_dir(self) -> str | None:
        """The directory of the pool's existing shards (pool.source shards, or datacomp with
        pool.datacomp.shards); None when the workflow downloads the pool into results/shards/."""
        return existing_shards_dir(self.config)

    @property
    def chunks(self) -> list[str]:
        return list(self.plan.chunks)

    def result(self, path: str) -> str:
        """A path under the results directory."""
        return os.path.join(self.config["results_dir"], path)

    @property
    def download_options(self) -> dict:
        """The download section as the download step takes it (without modeflow's own checks'
        switches, so toggling one reruns no download)."""
        return {k: v for k, v in self.config["download"].items() if k != "allow_upscale"}

    @property
    def cluster_model(self) -> dict[str, str]:
        """The cluster model's files (modeflow.cluster.model.MODEL_FILES), by key."""
        return {key: self.result(f"cluster/{name}") for key, name in MODEL_FILES.items()}

    @property
    def final_targets(self) -> list[str]:
        """The outputs the workflow's `all` asks for: each stage's last products and reports."""
        R, demo = self.result, self.source == "demo"
        targets = [R(f"embed/{chunk}.npy") for chunk in self.chunks]
        if not self.shards_dir:
            targets.append(R("download/summary.json"))
        targets.append(R("cluster/summary.json"))
        if demo:
            targets.append(R("cluster/demo_scores.json"))
        targets += [R(f"filter/subsets/{self.filter_use}.npy"), R("filter/summary.json"), R("filter/funnel.png")]
        if demo:
            targets += [R("filter/demo_scores.json"), R("filter/demo_scores.png")]
        targets += [R(f"experts/{expert}") for expert in self.experts] + [R("reshard/summary.json")]
        targets += [R(f"grow/{g.label}/cluster.json") for g in self.grown] + [R(f"experts/{g.expert}") for g in self.grown]
        if RANDOM_SPLIT in self.control_arms:
            targets.append(R("random_split/split.json"))
        targets += [R(f"models/{model}.pt") for model in self.models]
        targets += [R(f"eval/{model}") for model in self.models]
        targets += [R("ensemble/summary.csv"), R("ensemble/claims.json"), R("ensemble/summary.html"),
                    R("train/curves.png")]
        if demo:
            targets.append(R("ensemble/demo_checks.json"))
        targets.append(R("report/health.json"))
        return targets


def resolve(config: dict, *, schema: dict | str | Path | None = None, check_files: bool = True) -> Settings:
    """Validate `config` and derive the workflow's settings from it; raise a ModeflowError naming the
    key (and the file) at fault.

    check_files: also read the files the config names (the pool table's header, each evaluation
    task's description files). The process that starts a run does; the jobs, which parse the
    workflow again, and runs whose files live in remote storage do not.
    """
    valid = validate_config(config, schema)
    check_references(valid)
    cfg = canonical(valid)
    cfg["filter"]["subsets"] = {name: cfg["filter"]["subsets"][name] for name in valid["filter"]["subsets"]}
    plan = plan_shards(cfg)
    check_cluster_config(cfg["cluster"], plan.num_rows)  # on the planned rows; the fit re-checks what downloaded
    recipe = {key: value for key, value in cfg["train"].items() if key not in _TRAIN_RUN_KEYS and value is not None}
    train = canonical(resolve_train_config(recipe | {"seed": cfg["seed"]}))
    cfg["download"] = resolve_download(cfg["download"], train["preset"])
    if not existing_shards_dir(cfg):  # existing shards are taken as they are
        check_image_side(cfg["download"], train["model"])
    tasks, task_inputs = _eval_tasks(cfg)
    if check_files:
        check_inputs(cfg, tasks)
    num_experts = cfg["cluster"]["num_experts"]
    arms = control_arms(cfg["train"]["control_arms"], train["preset"], num_experts)
    grown = resolve_grown(cfg, list(tasks), check_files=check_files)
    if check_files:
        for g in grown:
            check_task_dirs(g.tasks.values(), f"{g.cluster.key}.tasks")
    models = ([SEED_MODEL] + [expert_model(i) for i in range(num_experts)] + [g.model for g in grown]
              + ([DENSE_MODEL] if train["dense"] else [])
              + ([random_model(i) for i in range(num_experts)] if RANDOM_SPLIT in arms else [])
              + ([DENSE_1X_MODEL] if DENSE_1X_MODEL in arms else []))
    return Settings(config=cfg, plan=plan, subsets=cfg["filter"]["subsets"], filter_use=cfg["filter"]["use"],
                    seed_subset=seed_subset(cfg), experts=[expert_name(i) for i in range(num_experts)],
                    models=models, control_arms=arms, train=train, tasks=tasks, task_inputs=task_inputs,
                    grown=grown)


def control_arms(asked: list[str] | None, preset: str, num_experts: int) -> list[str]:
    """train.control_arms resolved: null means both arms for the demo preset and dense_1x alone for
    the DataComp presets (a random split costs as much as the experts); in CONTROL_ARMS' order.
    An arm the config cannot build is an error naming the key."""
    arms = list(CONTROL_ARMS) if asked is None and preset == "demo" else \
        [DENSE_1X_MODEL] if asked is None else list(asked)
    if RANDOM_SPLIT in arms and num_experts < 2:
        raise ConfigError(f"train.control_arms: {RANDOM_SPLIT} needs at least 2 experts to split the data "
                          f"between, but cluster.num_experts is {num_experts} (one random part would be "
                          f"all the data: that is dense_1x); drop {RANDOM_SPLIT} or raise cluster.num_experts")
    return [arm for arm in CONTROL_ARMS if arm in arms]


def _eval_tasks(cfg: dict) -> tuple[dict[str, str], list[str]]:
    """{task name: directory} (a task is named after its directory) and the evaluations' inputs."""
    results = cfg["results_dir"]
    if cfg["evaluate"]["tasks"] == "demo":
        names = list(cfg["pool"]["demo"]["domains"]) + list(_DEMO_EXTRA_TASKS)
        return {name: os.path.join(results, f"demo/tasks/{name}") for name in names}, [os.path.join(results, "demo")]
    root = cfg["evaluate"].get("datacomp_root")
    if cfg["evaluate"]["tasks"] == "datacomp":  # check_inputs lists the directories missing under the root
        if not root:
            raise ConfigError("evaluate.tasks is datacomp but evaluate.datacomp_root is not set: name the "
                              "directory holding DataComp's evaluation sets (download_evalsets.py's data_dir)")
        tasks = datacomp_task_dirs(root)
        return tasks, list(tasks.values())
    if root:
        raise ConfigError(f"evaluate.datacomp_root is set ({root!r}) but evaluate.tasks is not datacomp; "
                          "drop the key or set evaluate.tasks: datacomp")
    tasks: dict[str, str] = {}
    for path in map(str, cfg["evaluate"]["tasks"]):
        name = os.path.basename(path.rstrip("/"))
        if name in tasks:
            raise ConfigError(f"evaluate.tasks: {tasks[name]!r} and {path!r} would both be task {name!r} "
                              "(a task is named after its directory)")
        tasks[name] = path
    return tasks, list(tasks.values())

