"""Which samples of the new data form the added expert's cluster (docs/method.md §13).

Every new sample is assigned with the finished mixture's cluster model (its nearest fine center and
the distance to it, modeflow.cluster.assign). Then either
- fine_clusters: the added expert's cluster is the new samples nearest to the chosen fine clusters
  (those fine clusters now route to it), or
- far_from_centers: it is the new samples farther than `distance` from every fine center, on which
  `num_fine` new fine centers are fitted (k-means as the cluster stage's).
New samples left out are counted in the step's stats (never dropped silently), and a cluster that
would be empty is a config error naming the entry's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.cluster.assign import assign
from modeflow.cluster.kmeans import fit_kmeans
from modeflow.cluster.model import ClusterModel
from modeflow.common.atomic import save_npy, write_json, write_parquet
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.subset_file import write_subset_file
from modeflow.common.uids import sort_pairs, uid_keys, uid_pairs
from modeflow.common.vectors import normalize_rows
from modeflow.grow.spec import FAR_FROM_CENTERS, FINE_CLUSTERS, GrownCluster

_TOP_FINE = 5  # nearest fine clusters named in an empty-cluster error, to choose from


def check_new_uids(new: np.ndarray, new_source: str, base_uid_tables: Sequence[str | Path]) -> None:
    """The new data must hold each uid once and none the mixture already holds: a uid in both would
    be trained on twice and could sit in two experts' data."""
    keys = np.sort(uid_keys(new))
    repeated = keys[1:][keys[1:] == keys[:-1]]
    if len(repeated):
        raise InputDataError(f"{new_source}: uid {_uid(repeated[0])} appears more than once in the new data "
                             f"({len(repeated)} repeats)")
    for path in base_uid_tables:
        base = uid_keys(uid_pairs(pq.read_table(path, columns=["uid"]).column("uid"), str(path)))
        seen = base[np.isin(base, keys)]
        if len(seen):
            raise InputDataError(f"{new_source}: {len(seen)} uid(s) of the new data are already in the mixture's "
                                 f"pool, e.g. {_uid(seen[0])} (in {path}); add data the mixture has not seen")


def _uid(key: bytes) -> str:
    """A uid_keys entry back as its uid string (numpy drops an S16 item's trailing zero bytes)."""
    return key.ljust(16, b"\0").hex()


def _empty_error(spec: GrownCluster, fine: np.ndarray, dist: np.ndarray) -> ConfigError:
    if spec.how == FINE_CLUSTERS:
        ids, counts = np.unique(fine, return_counts=True)
        top = ", ".join(f"{i} ({c})" for i, c in sorted(zip(ids.tolist(), counts.tolist()), key=lambda t: -t[1])[:_TOP_FINE])
        return ConfigError(f"{spec.key}.{FINE_CLUSTERS}: none of the {len(fine)} new samples is nearest to fine "
                           f"clusters {list(spec.fine_clusters)}, so the added expert's cluster would be empty; the "
                           f"new samples' nearest fine clusters, with their sample counts: {top}")
    quantiles = np.quantile(dist, [0.5, 1.0]).round(3).tolist() if len(dist) else [None, None]
    return ConfigError(f"{spec.key}.{FAR_FROM_CENTERS}.distance: {spec.far_num_fine} new fine clusters need at least "
                       f"as many samples farther than {spec.far_distance} from every fine center, but "
                       f"{int((dist > spec.far_distance).sum())} of the {len(dist)} new samples are (their distances: "
                       f"median {quantiles[0]}, largest {quantiles[1]}); lower the distance")


def select_cluster(vectors: np.ndarray, model: ClusterModel, spec: GrownCluster, cluster_cfg: Mapping,
                   seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The added expert's cluster among the new samples -> ({fine, distance, member, new_fine}, the
    new fine centers (k, d): none for fine_clusters). `new_fine` is a member's new fine cluster
    (0 .. k-1; -1 otherwise)."""
    fine, _, dist = assign(vectors, model, source=f"{spec.key} embeddings")
    new_fine = np.full(len(fine), -1, np.int32)
    if spec.how == FINE_CLUSTERS:
        member = np.isin(fine, spec.fine_clusters)
        centers = np.zeros((0, model.fine_centers.shape[1]), np.float32)
        if not member.any():
            raise _empty_error(spec, fine, dist)
        return {"fine": fine, "distance": dist, "member": member, "new_fine": new_fine}, centers
    member = dist > spec.far_distance
    if member.sum() < spec.far_num_fine:
        raise _empty_error(spec, fine, dist)
    far = normalize_rows(np.asarray(vectors[member], dtype=np.float32), source=f"{spec.key} embeddings")
    centers, labels = fit_kmeans(far, spec.far_num_fine, niter=cluster_cfg["fine_iterations"], seed=seed,
                                 spherical=cluster_cfg["metric"] == "spherical")
    new_fine[member] = labels
    return {"fine": fine, "distance": dist, "member": member, "new_fine": new_fine}, centers


def cluster_stats(spec: GrownCluster, model: ClusterModel, columns: Mapping[str, np.ndarray]) -> dict:
    """What the step did with every new sample: in the added cluster, or left out (and which existing
    expert's fine clusters those were nearest to)."""
    member, fine = columns["member"], columns["fine"]
    left_out = np.bincount(model.fine_to_coarse[fine[~member]], minlength=model.num_experts)
    return {
        **spec.params(), "expert": spec.expert, "model": spec.model, "how": spec.how,
        "rows": int(len(member)), "members": int(member.sum()), "left_out": int((~member).sum()),
        # the samples not in the added cluster, by the existing expert they are nearest to
        "left_out_nearest_expert": {f"{e:02d}": int(c) for e, c in enumerate(left_out) if c},
        "distance": {q: round(float(v), 4) for q, v in zip(("min", "median", "max"),
                     np.quantile(columns["distance"], [0, 0.5, 1]))} if len(member) else {},
        "new_fine_sizes": np.bincount(columns["new_fine"][member], minlength=spec.far_num_fine or 0).tolist()
        if spec.how == FAR_FROM_CENTERS else [],
    }


def grow_cluster(npy: str | Path, uid_parquet: str | Path, model: ClusterModel, spec: GrownCluster,
                 cluster_cfg: Mapping, seed: int, base_uid_tables: Sequence[str | Path], *,
                 out_assign: str | Path, out_members: str | Path, out_centers: str | Path,
                 out_stats: str | Path) -> dict:
    """The grow_cluster step: assign the new data, select the added expert's cluster, write the
    assignment (uid, fine, distance, member, new_fine), the members as a subset file (what the
    reshard keeps), the new fine centers and the stats."""
    vectors = np.load(npy, mmap_mode="r")
    uids = pq.read_table(uid_parquet, columns=["uid"]).column("uid")
    if len(uids) != len(vectors):
        raise InputDataError(f"{uid_parquet} has {len(uids)} rows but {npy} has {len(vectors)}: rerun the embed job")
    pairs = uid_pairs(uids, str(uid_parquet))
    check_new_uids(pairs, str(uid_parquet), base_uid_tables)
    columns, centers = select_cluster(vectors, model, spec, cluster_cfg, seed)
    write_parquet(out_assign, pa.table({"uid": uids, **{k: pa.array(v) for k, v in columns.items()}}))
    write_subset_file(out_members, sort_pairs(pairs[columns["member"]]))
    save_npy(out_centers, np.ascontiguousarray(centers, dtype=np.float32))
    stats = cluster_stats(spec, model, columns)
    write_json(out_stats, stats)
    return stats
