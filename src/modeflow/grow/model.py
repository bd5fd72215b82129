"""The grown cluster model: the finished mixture's, plus one coarse cluster per added expert, which
is what the ensemble routes with (docs/method.md §13).

An addition of existing fine clusters moves them to the added expert (fine_to_coarse now maps them
to it); an addition of new fine clusters appends their centers, mapped to it. The added expert's
coarse center is the mean of its fine centers, as the coarse k-means' centers are. The base model's
files are never rewritten: the grown model is a model of its own (results/grow/cluster/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from modeflow.cluster.model import ClusterModel
from modeflow.common.atomic import write_json
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.grow.spec import GrownCluster


# In the routing step's output: where, under the results directory, the cluster model it routed with
# lies ("grow/cluster"); absent: the cluster stage's "cluster"
CLUSTER_MODEL_JSON = "cluster_model.json"
BASE_CLUSTER_DIR = "cluster"


def write_cluster_model_dir(routing_dir: str | Path, cluster_dir: str) -> None:
    write_json(Path(routing_dir) / CLUSTER_MODEL_JSON, {"dir": cluster_dir})


def routed_cluster_dir(results_dir: str | Path, routing_dir: str | Path) -> Path:
    """The cluster model directory the routing step used, under `results_dir`."""
    record = Path(routing_dir) / CLUSTER_MODEL_JSON
    if not record.is_file():
        return Path(results_dir) / BASE_CLUSTER_DIR
    rel = json.loads(record.read_text()).get("dir")
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise InputDataError(f"{record}: 'dir' must be a path inside the results directory, got {rel!r}")
    return Path(results_dir) / rel


def grow_model(base: ClusterModel, additions: Sequence[GrownCluster],
               new_centers: Sequence[np.ndarray]) -> ClusterModel:
    """`base` with one coarse cluster per addition, in order (additions[i] is expert n + i);
    new_centers[i]: the addition's new fine centers ((0, d) for fine_clusters)."""
    fine = [base.fine_centers.astype(np.float32)]
    mapping = base.fine_to_coarse.astype(np.int64).copy()
    coarse = [base.coarse_centers.astype(np.float32)]
    dim = base.fine_centers.shape[1]
    for offset, (spec, centers) in enumerate(zip(additions, new_centers)):
        index = base.num_experts + offset
        if spec.index != index:
            raise ConfigError(f"{spec.key}: planned as expert {spec.index} but it is addition {offset} of a "
                              f"{base.num_experts}-expert model; rerun the workflow's grow steps")
        centers = np.asarray(centers, dtype=np.float32).reshape(-1, dim)
        if spec.fine_clusters is not None:
            own = base.fine_centers[list(spec.fine_clusters)]
            mapping[list(spec.fine_clusters)] = index
        else:
            own = centers
            fine.append(centers)
            mapping = np.concatenate([mapping, np.full(len(centers), index, np.int64)])
        coarse.append(own.mean(axis=0, keepdims=True))
    num_experts = base.num_experts + len(additions)
    orphans = sorted(set(range(base.num_experts)) - set(mapping.tolist()))
    if orphans:
        raise ConfigError(f"grow.experts: the fine clusters chosen take every fine cluster of expert(s) "
                          f"{[f'{e:02d}' for e in orphans]}, which the ensemble could then never route to; "
                          "leave each existing expert at least one fine cluster")
    params = {**base.params, "num_experts": num_experts, "num_fine": int(len(mapping)),
              "grown_from": {"num_experts": base.num_experts, "num_fine": base.num_fine},
              "added": [{"name": s.label, "expert": s.expert, "how": s.how,
                         "fine_clusters": list(s.fine_clusters) if s.fine_clusters is not None else None,
                         "new_fine": int(len(c)) if s.fine_clusters is None else 0}
                        for s, c in zip(additions, new_centers)]}
    return ClusterModel(np.concatenate(fine), np.concatenate(coarse), mapping, params)
