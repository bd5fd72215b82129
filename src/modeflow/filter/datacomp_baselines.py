"""DataComp's seven baselines computed from a CommonPool metadata directory (parquets + npz), part by
part as `baselines/apply_filter.py` does, into a sorted u8,u8 subset and its stats.

Which columns and npz arrays each kind reads is declared here (`needs`), so a missing column is
reported before any work, naming the file and the column. The rules are modeflow.filter.metadata_rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.common.uids import sort_pairs
from modeflow.filter import metadata_rules as rules
from modeflow.filter.langid import cld3_languages, fasttext_languages
from modeflow.pool.datacomp import CommonPool, metadata_uid_pairs, read_metadata

METADATA_KINDS = ("no_filter", "basic_filter", "clip_score", "laion2b", "text_based", "image_based",
                  "image_based_clip_score")


def needs(kind: str, spec: dict) -> tuple[list[str], list[str]]:
    """(parquet columns, npz arrays) that `kind` reads."""
    cols = ["uid"]
    if kind in ("basic_filter", "text_based", "image_based", "image_based_clip_score", "laion2b"):
        cols.append("text")
    if kind == "basic_filter":
        cols += ["original_width", "original_height"]
    if kind == "laion2b":
        cols.append(rules.SCORE_COLUMNS["b32"])
    if kind in ("clip_score", "image_based_clip_score"):
        cols.append(rules.score_column(spec.get("arch"), "arch"))
    features = ["l14_img"] if kind.startswith("image_based") else []
    return cols, features


def load_array(path: str, what: str, key: str) -> np.ndarray:
    """A 2-d float array from .npy (or a DataComp .pt: a tensor, or a dict holding `image_features`)."""
    if not Path(path).is_file():
        raise ConfigError(f"{key}: {what} file not found: {path}")
    if str(path).endswith(".npy"):
        arr = np.load(path)
    else:
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputDataError(f"{path}: cannot read {what} ({exc}); save it as a .npy array") from None
        obj = obj["image_features"] if isinstance(obj, dict) and "image_features" in obj else obj
        arr = obj.float().numpy() if hasattr(obj, "numpy") else np.asarray(obj)
    if arr.ndim != 2:
        raise InputDataError(f"{path}: {what} must be a 2-d array (rows x dims), got shape {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


def _clip_threshold(pool: CommonPool, spec: dict, column: str, key: str) -> float:
    if ("threshold" in spec) == ("fraction" in spec):
        raise ConfigError(f"{key}: give exactly one of `threshold` or `fraction`")
    if "threshold" in spec:
        return float(spec["threshold"])
    scores = np.concatenate([read_metadata(p, [column])[column].to_numpy() for p in pool.parquets])
    return rules.datacomp_threshold(scores, spec["fraction"], f"{key}.fraction")


def metadata_subset(name: str, spec: dict, pool: CommonPool, *, basic: dict | None = None) -> tuple[np.ndarray, dict]:
    """The subset `name` (kind in METADATA_KINDS) of the pool, sorted; stats as the other subsets'."""
    kind, key = spec["kind"], f"filter.subsets.{name}"
    if kind not in METADATA_KINDS:
        raise ValueError(f"not a metadata kind: {kind}")
    cols, feats = needs(kind, spec)
    for parquet in pool.parquets:  # every file has what the kind reads, before any work
        missing = [c for c in cols if c not in _schema(parquet)]
        if missing:
            raise InputDataError(f"{parquet}: no column {missing[0]!r} (needed by {key}, kind {kind}); "
                                 f"the file has {_schema(parquet)}")
    lang_model = spec.get("language_model")
    threshold = None
    if kind in ("clip_score", "image_based_clip_score"):
        threshold = _clip_threshold(pool, spec, rules.score_column(spec["arch"], f"{key}.arch"), key)
    if kind == "text_based":
        from modeflow.filter.wordnet import FirstSynsets, open_wordnet, read_synset_list

        if not spec.get("synsets"):
            raise ConfigError(f"{key}.synsets: text_based needs the ImageNet-21k synset id list file")
        entities = read_synset_list(spec["synsets"])
        first_synset = FirstSynsets(open_wordnet(spec.get("wordnet") or "/usr/share/wordnet"))
    if kind.startswith("image_based"):
        for field in ("centroids", "targets"):
            if not spec.get(field):
                raise ConfigError(f"{key}.{field}: {kind} needs the pool centroids and the target features (.npy)")
        centroids = load_array(spec["centroids"], "pool centroids", f"{key}.centroids")
        targets = rules.target_centroid_ids(load_array(spec["targets"], "target features", f"{key}.targets"),
                                            centroids)

    kept, removed, rows_in = [], {}, 0

    def count(rule, mask):
        removed[rule] = removed.get(rule, 0) + int((~mask).sum())

    for parquet in pool.parquets:
        table = read_metadata(parquet, cols, needed_by=key)
        n = table.num_rows
        rows_in += n
        texts = table["text"].to_pylist() if "text" in cols else None
        if kind == "no_filter":
            keep = np.ones(n, bool)
        elif kind == "basic_filter":
            masks = rules.basic_filter_mask(texts, table["original_width"].to_numpy(),
                                            table["original_height"].to_numpy(), None, basic or {})
            for rule, m in masks.items():
                count(rule, m)
            keep = np.logical_and.reduce(list(masks.values()))
            # the language last and only where the cheap rules keep the row: the AND is the same
            rows = np.flatnonzero(keep)
            langs, _ = fasttext_languages([texts[i] for i in rows], lang_model)
            english = np.asarray(langs, dtype=object) == (basic or {}).get("language", rules.ENGLISH)
            count("language_of_the_rest", english)
            keep[rows[~english]] = False
        elif kind == "clip_score":
            keep = rules.threshold_mask(table[rules.score_column(spec["arch"])].to_numpy(), threshold)
            count("clip_score_below_threshold", keep)
        elif kind == "laion2b":
            score = rules.threshold_mask(table[rules.SCORE_COLUMNS["b32"]].to_numpy(), rules.LAION2B_THRESHOLD)
            english = rules.english_mask(cld3_languages(texts))
            count("b32_score_below_0.28", score)
            count("cld3_not_english", english)
            keep = score & english
        elif kind == "text_based":
            from modeflow.filter.wordnet import contains_entity

            langs, _ = fasttext_languages(texts, lang_model)
            english = rules.english_mask(langs)
            # WordNet only for English captions: the AND is the same, the lookups fewer
            entity = np.zeros(n, bool)
            entity[english] = contains_entity([t for t, e in zip(texts, english) if e], first_synset, entities)
            count("not_english", english)
            count("no_imagenet21k_synset", entity | ~english)
            keep = english & entity
        else:  # image_based, image_based_clip_score
            features = pool.features(parquet, "l14_img", n)
            pre = np.ones(n, bool)
            if kind == "image_based_clip_score":
                pre = rules.threshold_mask(table[rules.score_column(spec["arch"])].to_numpy(), threshold)
                count("clip_score_below_threshold", pre)
            langs, _ = fasttext_languages(texts, lang_model)
            caption = rules.caption_filter_mask(texts, langs)
            count("caption_filter", caption | ~pre)
            keep = rules.image_based_mask(features, centroids, targets, pre & caption)
            count("nearest_centroid_not_a_target", keep | ~(pre & caption))
        kept.append(metadata_uid_pairs(table["uid"].filter(pa.array(keep)), parquet))  # only the kept uids
    pairs = sort_pairs(np.concatenate(kept)) if kept else np.empty(0, np.dtype("u8,u8"))
    stats = {"name": name, "kind": kind, "rows_in": rows_in, "rows_kept": int(len(pairs)),
             "removed_by_rule": removed, "metadata": pool.directory}
    if threshold is not None:
        stats["threshold"] = threshold
        stats["arch"] = spec["arch"]
    if len(pairs) == 0:
        raise InputDataError(f"{key} ({kind}) keeps none of the {rows_in} rows of {pool.directory} "
                             f"(removed per rule: {removed})")
    return pairs, stats


def _schema(parquet: str) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(parquet).names)


def check_commonpool(cfg: dict) -> None:
    """Before any job: every metadata parquet has the columns each metadata subset of the config reads,
    and every npz the arrays it reads (the filters' and, for embed.encoder precomputed, embed.features);
    the first gap is an error naming the file and the column or array. Reads file footers only."""
    from modeflow.filter.subsets import from_metadata

    pool = CommonPool.open(cfg["pool"]["datacomp"]["metadata"])
    columns: dict[str, str] = {}  # column -> the subset that reads it
    arrays: dict[str, str] = {}
    for name, spec in cfg["filter"]["subsets"].items():
        if from_metadata(spec, cfg["pool"]["source"]):
            cols, feats = needs(spec["kind"], spec)
            columns.update({c: f"filter.subsets.{name}" for c in cols if c not in columns})
            arrays.update({a: f"filter.subsets.{name}" for a in feats if a not in arrays})
    if cfg["embed"]["encoder"] == "precomputed":
        arrays.setdefault(cfg["embed"]["features"], "embed.features")
    for parquet in pool.parquets:
        names = _schema(parquet)
        for column, key in columns.items():
            if column not in names:
                raise InputDataError(f"{parquet}: no column {column!r} (needed by {key}); the file has {names}")
        if arrays:
            npz = pool.npz_of(parquet)
            if not Path(npz).is_file():
                key = next(iter(arrays.values()))
                raise InputDataError(f"{npz}: npz of {parquet} not found (its {sorted(arrays)} features are "
                                     f"needed by {key})")
            with np.load(npz) as archive:
                for array, key in arrays.items():
                    if array not in archive.files:
                        raise InputDataError(f"{npz}: no array {array!r} (needed by {key}); it has {archive.files}")
