"""Filters and subsets: attributes, basic_filter rules at their thresholds, dedup, subset files,
set algebra, config errors and the report's demo scores, all on tiny synthetic tables."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from fixtures import Sample, write_shard
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.demo.score_filter import plot_subset_scores, score_subsets
from modeflow.filter.report import plot_funnel, summarize
from modeflow.filter.attributes import detect_languages, sample_attributes
from modeflow.filter.rules import basic_filter_masks, dedup_exact_mask, dedup_near_mask
from modeflow.filter.build import build_subset, build_subset_from_inputs, load_attributes, load_embeddings
from modeflow.common.subset_file import read_subset_file
from modeflow.filter.subsets import KIND_INPUTS, check_subsets, combine, subset_dependencies, subset_inputs
from modeflow.common.uids import UID_DTYPE, pairs_to_uids, uids_to_pairs

BASIC = {"language": "en", "min_words": 3, "min_chars": 6, "min_image_side": 32, "max_aspect_ratio": 3.0}
EN = "a red circle on a blue background"


def uid(i: int) -> str:
    return f"{i:032x}"


def attrs(rows) -> pa.Table:
    """rows: dicts with any of caption/w/h/sha/language; the rest are defaults that pass basic."""
    n = len(rows)
    caps = [r.get("caption", EN) for r in rows]
    return pa.table({
        "uid": [r.get("uid", uid(i)) for i, r in enumerate(rows)],
        "shard": [r.get("shard", "00000") for r in rows],
        "key": [r.get("key", f"{i:06d}") for i, r in enumerate(rows)],
        "caption": caps,
        "original_width": pa.array([r.get("w", 64) for r in rows], pa.int32()),
        "original_height": pa.array([r.get("h", 64) for r in rows], pa.int32()),
        "sha256": [r.get("sha", f"sha{i}") for i, r in enumerate(rows)],
        "language": [r.get("language", "en") for r in rows],
        "language_score": pa.array([0.9] * n, pa.float32()),
        "words": pa.array([len(c.split()) for c in caps], pa.int32()),
        "chars": pa.array([len(c) for c in caps], pa.int32()),
    })


# ---- attributes -------------------------------------------------------------------------------

def test_detect_languages_en_fr_de_zh_and_newlines():
    caps = ["a red circle on a blue background", "un cercle rouge sur un fond bleu",
            "ein roter Kreis auf blauem Hintergrund", "蓝色背景上的红色圆圈",
            "a photo of a dog\nplaying in the green park", "a photo of a dog\nplaying in the green park"]
    langs, scores = detect_languages(caps)
    assert langs == ["en", "fr", "de", "zh", "en", "en"]
    assert scores.dtype == np.float32 and np.all((scores > 0) & (scores <= 1))


def shard_table(tmp_path, shard, rows):
    """The shard's img2dataset parquet, from rows (uid, caption, key, status, original_width) of
    images 64 px high; a downloaded image's sha256 is "h<key>"."""
    samples = []
    for u, caption, key, status, width in rows:
        sha256 = {"sha256": f"h{key}"} if status == "success" else {}
        samples.append(Sample(key, caption, uid=u, status=status,
                              row={"original_width": width, "original_height": 64, **sha256}))
    write_shard(tmp_path / f"{shard}.tar", samples, metadata=True)
    return str(tmp_path / f"{shard}.parquet")


def test_sample_attributes_follow_embed_order_and_skip_failures(tmp_path):
    p0 = shard_table(tmp_path, "00000", [(uid(0), "a small cat sleeping on a mat", "000000", "success", 64),
                                         (uid(1), "x", "000001", "failed_to_download", None),
                                         (uid(2), "un chat sur un tapis rouge", "000002", "success", 10)])
    p1 = shard_table(tmp_path, "00001", [(uid(3), "img", "001000", "success", 200)])
    emb = tmp_path / "embed.parquet"  # tar order differs from parquet order
    pq.write_table(pa.table({"uid": [uid(2), uid(0), uid(3)], "shard": ["00000", "00000", "00001"],
                             "key": ["000002", "000000", "001000"]}), emb)
    table = sample_attributes([p0, p1], str(emb))
    assert table["uid"].to_pylist() == [uid(2), uid(0), uid(3)]
    assert table["language"].to_pylist()[:2] == ["fr", "en"]
    assert table["words"].to_pylist() == [6, 7, 1] and table["chars"].to_pylist() == [26, 29, 3]
    assert table["original_width"].to_pylist() == [10, 64, 200]
    assert table["sha256"].to_pylist() == ["h000002", "h000000", "h001000"]


def test_sample_attributes_mismatch_names_the_shard(tmp_path):
    p0 = shard_table(tmp_path, "00007", [(uid(0), "a cat on a mat", "000000", "success", 64),
                                         (uid(1), "a dog on a mat", "000001", "success", 64)])
    emb = tmp_path / "embed.parquet"
    pq.write_table(pa.table({"uid": [uid(0)], "shard": ["00007"], "key": ["000000"]}), emb)
    with pytest.raises(InputDataError, match="shard 00007"):
        sample_attributes([p0], str(emb))


# ---- basic_filter -----------------------------------------------------------------------------

@pytest.mark.parametrize("rule,row,kept", [
    ("min_words", {"caption": "two words"}, False),
    ("min_words", {"caption": "now three words"}, True),
    ("min_chars", {"caption": "a b c"}, False),          # 3 words but 5 chars
    ("min_chars", {"caption": "a b cd"}, True),          # 6 chars: the boundary is kept
    ("min_image_side", {"w": 31, "h": 64}, False),
    ("min_image_side", {"w": 32, "h": 32}, True),
    ("max_aspect_ratio", {"w": 97, "h": 32}, False),     # 3.03
    ("max_aspect_ratio", {"w": 32, "h": 96}, True),      # exactly 3
    ("language", {"language": "fr"}, False),
    ("language", {"language": "en"}, True),
])
def test_basic_rule_boundaries(rule, row, kept):
    masks = basic_filter_masks(attrs([row]), BASIC)
    assert bool(masks[rule][0]) is kept
    others = [r for r, m in masks.items() if r != rule]
    assert all(masks[r][0] for r in others), "the row only tests its own rule"


def test_basic_filter_counts_each_rule_separately():
    rows = [{}, {"caption": "ab"}, {"caption": "ab", "w": 8}, {"w": 500, "h": 100}, {"language": "de"}]
    pairs, stats = build_subset("basic", {"kind": "basic_filter"}, basic=BASIC, attributes=attrs(rows))
    assert pairs_to_uids(pairs) == [uid(0)]
    assert stats["rows_in"] == 5 and stats["rows_kept"] == 1
    assert stats["removed_by_rule"] == {"language": 1, "min_words": 2, "min_chars": 2,
                                        "min_image_side": 1, "max_aspect_ratio": 2}


def test_basic_filter_that_keeps_nothing_names_the_rule():
    with pytest.raises(InputDataError, match=r"filter.subsets.b .*min_image_side"):
        build_subset("b", {"kind": "basic_filter"}, basic=BASIC, attributes=attrs([{"w": 8}, {"h": 4}]))


# ---- dedup ------------------------------------------------------------------------------------

def test_dedup_exact_keeps_first_in_pool_order():
    rows = [{"sha": "A", "shard": "00001", "key": "001000"}, {"sha": "A", "shard": "00000", "key": "000005"},
            {"sha": "B"}, {"sha": "A", "shard": "00000", "key": "000009"}, {"sha": "C"}, {"sha": "C"}]
    table = attrs(rows)
    keep = dedup_exact_mask(table)
    assert keep.tolist() == [False, True, True, False, True, False]
    assert dedup_exact_mask(table.take([5, 4, 3, 2, 1, 0])).tolist() == keep[::-1].tolist()
    pairs, stats = build_subset("d", {"kind": "dedup_exact"}, attributes=table)
    assert len(pairs) == 3 and stats["removed_by_rule"] == {"duplicate_sha256": 3}


def test_dedup_near_on_crafted_vectors():
    theta = np.arccos(0.95)
    v = np.array([[1, 0, 0], [np.cos(theta), np.sin(theta), 0], [0, 0, 1], [0, 0, 5],
                  [0, 1, 0], [np.cos(theta) * 3, np.sin(theta) * 3, 0.0]], dtype=np.float32)
    order = np.arange(6)
    # 0~1 (0.95), 0~5, 1~5, 2~3 (same direction, other norm); 4 alone
    assert dedup_near_mask(v, order, 0.95).tolist() == [True, False, True, False, True, False]
    assert dedup_near_mask(v, order, 0.96).tolist() == [True, True, True, False, True, False]
    assert dedup_near_mask(v, order[::-1], 0.95).tolist() == [False, False, False, True, True, True]
    for batch in (1, 2, 4):  # matches across batch boundaries count the same
        assert dedup_near_mask(v, order, 0.95, batch=batch).tolist() == [True, False, True, False, True, False]
    v[3] = 0
    with pytest.raises(InputDataError, match=r"dedup_near: caption embeddings: row 3 is a zero"):
        dedup_near_mask(v, order, 0.95)


def test_dedup_near_subset_uses_pool_order(tmp_path):
    table = attrs([{"shard": "00001"}, {"shard": "00000"}, {}])
    vec = np.array([[1, 0], [1, 0.01], [0, 1]], dtype=np.float32)
    np.save(tmp_path / "v.npy", vec)
    pq.write_table(table.select(["uid", "shard", "key"]), tmp_path / "u.parquet")
    loaded = load_embeddings([str(tmp_path / "v.npy")], [str(tmp_path / "u.parquet")], table["uid"].to_pylist())
    pairs, stats = build_subset("n", {"kind": "dedup_near", "threshold": 0.99}, attributes=table, vectors=loaded)
    assert pairs_to_uids(pairs) == [uid(1), uid(2)]
    with pytest.raises(InputDataError, match="not aligned"):
        load_embeddings([str(tmp_path / "v.npy")], [str(tmp_path / "u.parquet")], [uid(2), uid(1), uid(0)])


# ---- subset files -----------------------------------------------------------------------------

def datacomp_recipe(uids, path):
    """DataComp README: np.array of (int(uid[:16],16), int(uid[16:32],16)), dtype u8,u8, sorted, np.save."""
    arr = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], np.dtype("u8,u8"))
    arr.sort()
    np.save(path, arr)
    return str(path)


def test_subset_file_accepted_absent_counted_multiplicity_kept(tmp_path):
    big = "ffffffffffffffff0000000000000001"  # high bits above 2**63: needs unsigned
    pool = attrs([{"uid": uid(1)}, {"uid": uid(2)}, {"uid": big}])
    path = datacomp_recipe([uid(2), uid(2), uid(9), big, uid(8)], tmp_path / "s.npy")
    pairs, stats = build_subset("f", {"kind": "subset_file", "path": path}, attributes=pool)
    assert pairs_to_uids(pairs) == [uid(2), uid(2), big]
    assert stats["absent_from_pool"] == 2 and stats["rows_in"] == 5 and stats["rows_kept"] == 3
    assert set(stats["absent_examples"]) == {uid(8), uid(9)}


def test_subset_file_errors_name_the_file(tmp_path):
    unsorted = tmp_path / "unsorted.npy"
    np.save(unsorted, np.array([(2, 0), (1, 0)], UID_DTYPE))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.array([1, 2], np.int64))
    for path, msg in [(unsorted, "not sorted"), (wrong, "dtype"), (tmp_path / "none.npy", "not found")]:
        with pytest.raises(InputDataError, match=f"{path.name}.*{msg}"):
            read_subset_file(path)
    pool = attrs([{"uid": uid(1)}])
    with pytest.raises(InputDataError, match="absent_from_pool removed everything"):
        build_subset("f", {"kind": "subset_file", "path": datacomp_recipe([uid(3)], tmp_path / "o.npy")},
                     attributes=pool)


# ---- set algebra ------------------------------------------------------------------------------

def P(*ids):
    return uids_to_pairs([uid(i) for i in ids])


def test_multiset_algebra():
    a, b, c = P(1, 1, 1, 2, 3), P(1, 1, 3, 4), P(3)
    assert pairs_to_uids(combine("union", [a, b])) == pairs_to_uids(P(1, 1, 1, 2, 3, 4))
    assert pairs_to_uids(combine("intersection", [a, b])) == pairs_to_uids(P(1, 1, 3))
    assert pairs_to_uids(combine("difference", [a, c])) == pairs_to_uids(P(1, 1, 1, 2))
    assert pairs_to_uids(combine("difference", [a, b, c])) == pairs_to_uids(P(2))
    pairs, stats = build_subset("x", {"kind": "intersection", "of": ["a", "b", "c"]},
                                operands={"a": a, "b": b, "c": c})
    assert pairs_to_uids(pairs) == [uid(3)] and stats["removed_by_rule"] == {"b": 2, "c": 2}
    with pytest.raises(InputDataError, match=r"filter.subsets.y .*'b'"):
        build_subset("y", {"kind": "difference", "of": ["c", "b"]}, operands={"b": b, "c": c})


# ---- config -----------------------------------------------------------------------------------

def test_config_errors_name_the_key():
    ok = {"use": "both", "subsets": {"a": {"kind": "no_filter"}, "b": {"kind": "basic_filter"},
                                     "both": {"kind": "intersection", "of": ["a", "b"]}}}
    check_subsets(ok)
    assert subset_dependencies(ok["subsets"], "both") == ["a", "b"]
    assert subset_dependencies(ok["subsets"], "a") == []
    bad = [
        ({"use": "a", "subsets": {"a": {"kind": "union", "of": ["zz"]}}}, r"filter.subsets.a.of: unknown"),
        ({"use": "a", "subsets": {"a": {"kind": "union", "of": ["b"]}, "b": {"kind": "union", "of": ["c"]},
                                  "c": {"kind": "intersection", "of": ["a"]}}}, r"filter.subsets.\w.of: .*cycle"),
        ({"use": "nope", "subsets": {"a": {"kind": "no_filter"}}}, r"filter.use: 'nope'"),
        ({"use": "a", "subsets": {"a": {"kind": "dedup_near"}}}, r"filter.subsets.a.threshold"),
        ({"use": "a", "subsets": {"a": {"kind": "subset_file"}}}, r"filter.subsets.a.path"),
        ({"use": "a", "subsets": {"a": {"kind": "difference", "of": ["a"]}}}, r"filter.subsets.a.of"),
    ]
    for cfg, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            check_subsets(cfg)


# ---- outputs and report -----------------------------------------------------------------------

def test_output_loads_as_sorted_u8_pairs_and_report(tmp_path):
    table = attrs([{"uid": uid(5)}, {"uid": uid(3), "caption": "pic"}, {"uid": uid(4), "sha": "sha0"},
                   {"uid": uid(9), "w": 4}])
    table = table.set_column(6, "sha256", pa.array(["s", "t", "s", "u"]))
    pq.write_table(table, tmp_path / "attrs.parquet")
    pool = load_attributes([str(tmp_path / "attrs.parquet")], ["original_width", "sha256"])
    paths = {}
    for name, spec in {"all": {"kind": "no_filter"}, "basic": {"kind": "basic_filter"},
                       "dedup": {"kind": "dedup_exact"}}.items():
        pairs, stats = build_subset(name, spec, basic=BASIC, attributes=load_attributes([str(tmp_path / "attrs.parquet")]))
        np.save(tmp_path / f"{name}.npy", pairs)
        (tmp_path / f"{name}.json").write_text(json.dumps(stats))
        paths[name] = str(tmp_path / f"{name}.npy")
        loaded = np.load(paths[name])
        assert loaded.dtype == np.dtype("u8,u8") and np.all(loaded == np.sort(loaded))
    assert len(pool) == 4 and pairs_to_uids(np.load(paths["dedup"])) == [uid(3), uid(5), uid(9)]
    summary = summarize({n: str(tmp_path / f"{n}.json") for n in paths}, "basic")
    assert summary["rows_used"] == 2
    plot_funnel(summary, tmp_path / "funnel.png")
    gt = tmp_path / "gt.parquet"
    pq.write_table(pa.table({"uid": [uid(5), uid(3), uid(4), uid(9), uid(7)],
                             "noise": ["clean", "too_short", "duplicate", "tiny", "dead_link"],
                             "duplicate_of": [None, None, uid(5), None, None]}), gt)
    scores = score_subsets(str(gt), pool["uid"].to_pylist(), paths, ["basic"])
    assert scores["basic"]["per_noise"]["too_short"]["share_removed"] == 1.0
    assert scores["basic"]["per_noise"]["clean"]["share_kept"] == 1.0
    assert scores["basic"]["acceptance"]["passed"] is True
    assert "dead_link" not in scores["basic"]["per_noise"]  # never reached the pool
    assert scores["dedup"]["per_noise"]["duplicate_groups"] == {"groups": 1, "share_one_kept": 1.0,
                                                                "share_none_kept": 0.0}
    plot_subset_scores(scores, tmp_path / "scores.png")
    assert (tmp_path / "funnel.png").stat().st_size > 1000 and (tmp_path / "scores.png").stat().st_size > 1000


def test_duplicate_uid_in_pool_is_an_error(tmp_path):
    for i in range(2):
        pq.write_table(attrs([{"uid": uid(1), "shard": f"0000{i}"}]), tmp_path / f"{i}.parquet")
    with pytest.raises(InputDataError, match=f"uid {uid(1)} appears 2 times"):
        load_attributes([str(tmp_path / "0.parquet"), str(tmp_path / "1.parquet")])


def test_subset_inputs_per_kind():
    cfg = {"a": {"kind": "no_filter"}, "n": {"kind": "dedup_near", "threshold": 0.9},
           "f": {"kind": "subset_file", "path": "my.npy"}, "u": {"kind": "union", "of": ["f", "a"]}}
    files = dict(attributes=["at0", "at1"], vectors=["v0", "v1"], uid_tables=["u0", "u1"],
                 subset_path=lambda d: f"subsets/{d}.npy")
    assert subset_inputs(cfg, "a", **files) == {"attributes": ["at0", "at1"]}
    assert subset_inputs(cfg, "n", **files) == {"attributes": ["at0", "at1"], "vectors": ["v0", "v1"],
                                                "uids": ["u0", "u1"]}
    assert subset_inputs(cfg, "f", **files) == {"attributes": ["at0", "at1"], "file": "my.npy"}
    assert subset_inputs(cfg, "u", **files) == {"subsets": ["subsets/f.npy", "subsets/a.npy"]}


def test_subset_built_from_the_files_subset_inputs_names(tmp_path):
    table = attrs([{"uid": uid(1), "shard": "00001"}, {"uid": uid(2)}, {"uid": uid(3)}])
    pq.write_table(table, tmp_path / "attrs.parquet")
    np.save(tmp_path / "v.npy", np.array([[1, 0], [1, 0.01], [0, 1]], dtype=np.float32))
    pq.write_table(table.select(["uid", "shard", "key"]), tmp_path / "u.parquet")
    cfg = {"a": {"kind": "no_filter"}, "n": {"kind": "dedup_near", "threshold": 0.99},
           "f": {"kind": "subset_file", "path": datacomp_recipe([uid(2), uid(9)], tmp_path / "f.npy")},
           "u": {"kind": "union", "of": ["n", "f"]}}
    files = dict(attributes=[str(tmp_path / "attrs.parquet")], vectors=[str(tmp_path / "v.npy")],
                 uid_tables=[str(tmp_path / "u.parquet")], subset_path=lambda d: str(tmp_path / f"{d}.npy"))
    built = {}
    for name in cfg:
        built[name] = build_subset_from_inputs(name, cfg[name], subset_inputs(cfg, name, **files), basic=BASIC)
        np.save(tmp_path / f"{name}.npy", built[name][0])
    assert pairs_to_uids(built["a"][0]) == [uid(1), uid(2), uid(3)]
    assert pairs_to_uids(built["n"][0]) == [uid(2), uid(3)]  # uid 1 comes later in pool order
    assert pairs_to_uids(built["f"][0]) == [uid(2)] and built["f"][1]["absent_from_pool"] == 1
    assert pairs_to_uids(built["u"][0]) == [uid(2), uid(3)] and built["u"][1]["kind"] == "union"


def test_every_configurable_kind_has_its_inputs():
    schema = yaml.safe_load((REPO / "src" / "modeflow" / "config" / "config.schema.yaml").read_text())
    kinds = schema["properties"]["filter"]["properties"]["subsets"]["additionalProperties"]["properties"]["kind"]["enum"]
    assert sorted(KIND_INPUTS) == sorted(kinds)
