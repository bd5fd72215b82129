"""The `grow.experts` config entries, checked against the finished mixture's config and resolved
into what the workflow plans: the added expert's index and names, its shards and its tasks."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.names import expert_model, expert_name
from modeflow.pool.plan import existing_shards

FINE_CLUSTERS, FAR_FROM_CENTERS = "fine_clusters", "far_from_centers"
DEFAULT_FAR_NUM_FINE = 4  # the schema's default of grow.experts[].far_from_centers.num_fine


@dataclass(frozen=True)
class GrownCluster:
    """What decides an added expert's cluster: grow.experts[position]'s cluster keys resolved.
    Plain values only, so that it travels to the job as a rule param (asdict / GrownCluster(**d))."""

    position: int  # its place in grow.experts (errors name grow.experts[position])
    label: str  # grow.experts[].name: results/grow/<label>/
    index: int  # its expert index: cluster.num_experts + position
    fine_clusters: tuple[int, ...] | None  # the existing fine clusters of its coarse cluster, or
    far_distance: float | None  # ... new fine clusters of the samples farther than this
    far_num_fine: int | None

    def __post_init__(self):  # a rule param comes back with lists
        if self.fine_clusters is not None:
            object.__setattr__(self, "fine_clusters", tuple(self.fine_clusters))

    @property
    def key(self) -> str:
        return f"grow.experts[{self.position}]"

    @property
    def expert(self) -> str:
        """Its expert name ("04"): its data directory experts/04/ and its report key."""
        return expert_name(self.index)

    @property
    def model(self) -> str:
        """Its model name ("expert_04")."""
        return expert_model(self.index)

    @property
    def how(self) -> str:
        return FINE_CLUSTERS if self.fine_clusters is not None else FAR_FROM_CENTERS

    def params(self) -> dict:
        """As a rule param: a change of any of it reruns the addition."""
        return {**asdict(self), FINE_CLUSTERS: list(self.fine_clusters) if self.fine_clusters else None}


@dataclass(frozen=True)
class GrownExpert:
    """One added expert: grow.experts[position] resolved (its cluster, data and tasks)."""

    cluster: GrownCluster
    shards_dir: str
    tars: tuple[str, ...]  # the shard tars, sorted
    tasks: dict[str, str]  # task name -> directory

    label = property(lambda self: self.cluster.label)
    expert = property(lambda self: self.cluster.expert)
    model = property(lambda self: self.cluster.model)


def _shard_tars(shards: str, key: str, check_files: bool) -> tuple[str, ...]:
    """The entry's tars, listed as the pool's existing shards are (modeflow.pool.plan.existing_shards)."""
    try:
        tars = tuple(os.path.join(shards, f"{name}.tar") for name in existing_shards(shards, f"{key}.shards"))
    except InputDataError as exc:
        raise ConfigError(str(exc)) from None
    if check_files:  # jobs re-parse the workflow: the process that starts the run has checked them
        missing = [t for t in tars if not Path(t).with_suffix(".parquet").is_file()]
        if missing:
            raise ConfigError(f"{key}.shards: {missing[0]} has no .parquet beside it (img2dataset writes one per "
                              "shard; the embed step reads its uids)")
    return tars


def resolve_grown(cfg: Mapping, base_tasks: Sequence[str], *, check_files: bool = True) -> list[GrownExpert]:
    """grow.experts resolved, in order; a ConfigError names the entry and key at fault. The
    entries' task directories are checked with the configured ones (modeflow.config.inputs)."""
    entries = cfg.get("grow", {}).get("experts", [])
    if not entries:
        return []
    if cfg["embed"]["encoder"] == "precomputed":
        raise ConfigError("grow.experts: the added data is embedded with the clustering's text encoder, but "
                          "embed.encoder is precomputed (features come with the pool's metadata); grow a "
                          "mixture clustered with a text encoder")
    num_fine, num_experts = cfg["cluster"]["num_fine"], cfg["cluster"]["num_experts"]
    labels, task_names = set(), set(base_tasks)
    claimed: dict[int, str] = {}
    out = []
    for position, entry in enumerate(entries):
        key = f"grow.experts[{position}]"
        label = entry["name"]
        if label in labels:
            raise ConfigError(f"{key}.name: {label!r} names an earlier entry too; each added expert needs its own name")
        labels.add(label)
        fine, far = entry.get(FINE_CLUSTERS), entry.get(FAR_FROM_CENTERS)
        if (fine is None) == (far is None):
            raise ConfigError(f"{key}: give exactly one of {FINE_CLUSTERS} (existing fine clusters) and "
                              f"{FAR_FROM_CENTERS} (new fine clusters of far samples)")
        if fine is not None:
            bad = [f for f in fine if f >= num_fine]
            if bad:
                raise ConfigError(f"{key}.{FINE_CLUSTERS}: {bad} out of range; the cluster model has "
                                  f"cluster.num_fine = {num_fine} fine clusters (0 .. {num_fine - 1})")
            for f in fine:
                if f in claimed:
                    raise ConfigError(f"{key}.{FINE_CLUSTERS}: fine cluster {f} already forms {claimed[f]}'s cluster")
                claimed[f] = key
        tasks: dict[str, str] = {}
        for path in map(str, entry.get("tasks", [])):
            name = os.path.basename(path.rstrip("/"))
            if name in task_names:
                raise ConfigError(f"{key}.tasks: {path!r} would be task {name!r}, which another task is already "
                                  "named (a task is named after its directory)")
            task_names.add(name)
            tasks[name] = path
        cluster = GrownCluster(
            position=position, label=label, index=num_experts + position,
            fine_clusters=tuple(sorted(fine)) if fine is not None else None,
            far_distance=float(far["distance"]) if far is not None else None,
            far_num_fine=int(far.get("num_fine", DEFAULT_FAR_NUM_FINE)) if far is not None else None)
        out.append(GrownExpert(cluster, shards_dir=entry["shards"],
                               tars=_shard_tars(entry["shards"], key, check_files), tasks=tasks))
    # whether each existing expert keeps a fine cluster needs the fitted map: the grown model checks it
    if len(claimed) == num_fine:
        raise ConfigError(f"grow.experts: the added experts take all {num_fine} fine clusters, so no existing "
                          "expert would be routed to")
    return out
