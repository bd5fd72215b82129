"""Run health (modeflow.report.health): every quiet condition of a run is counted and named."""

from __future__ import annotations

import json

from modeflow.report.health import collect_health, health_html
from modeflow.train.data_size import smaller_than_batch


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _run_files(root, *, empty_shards=(), uncaptioned=0, chunk_samples=(96, 100), expert_samples=(58, 40),
               seed_samples=249, absent=0):
    download = _write(root / "download" / "summary.json", {
        "empty_shards": list(empty_shards),
        "failure_reasons": {"HTTP Error 404: Not Found": 100} if empty_shards else {}})
    pool = _write(root / "pool" / "pool_stats.json", {
        "rows": 300, "duplicates_dropped": 0, "images_without_caption": uncaptioned,
        "images_without_caption_examples": [f"img{i}.png" for i in range(min(uncaptioned, 5))]})
    chunks = [_write(root / "reshard" / "index" / f"{i:05d}.json", {"pool_samples": n})
              for i, n in enumerate(chunk_samples)]
    summary = _write(root / "reshard" / "summary.json", {"absent_uids": absent})
    data = {"seed": _write(root / "pooled" / "basic" / "meta.json", {"output_samples": seed_samples})}
    for i, n in enumerate(expert_samples):
        data[f"expert_{i:02d}"] = _write(root / "experts" / f"{i:02d}" / "meta.json", {"output_samples": n})
    return dict(download_summary=download, pool_stats=pool, reshard_chunks=chunks,
                reshard_summary=summary, training_data=data)


def test_a_clean_run_has_no_warning(tmp_path):
    health = collect_health(**_run_files(tmp_path), global_batch=32)
    assert health == {"warnings": [], "empty_shards": [], "num_warnings": 0}
    assert "No empty shard" in health_html(health)


def test_empty_shards_undersized_data_and_uncaptioned_images_are_named(tmp_path):
    files = _run_files(tmp_path, empty_shards=["00002"], uncaptioned=3, chunk_samples=(96, 0),
                       expert_samples=(58, 20), seed_samples=10, absent=4)
    health = collect_health(**files, global_batch=32)
    by_what = {w["what"]: w for w in health["warnings"]}
    assert health["empty_shards"] == ["00002"]
    assert by_what["empty_shards"]["items"] == ["00002"] and "404" in by_what["empty_shards"]["message"]
    assert by_what["empty_chunks"]["items"] == ["00001"]
    assert by_what["images_without_caption"]["count"] == 3
    assert by_what["absent_uids"]["count"] == 4
    small = by_what["smaller_than_batch"]
    assert small["count"] == 2 and "expert_01: 20 training sample(s)" in small["message"]
    assert "seed: 10 training sample(s)" in small["message"]
    table = health_html(health)
    assert table.count("<tr>") == 1 + len(health["warnings"]) and "00002" in table


def test_smaller_than_batch_is_a_named_warning_only_below_one_batch():
    assert smaller_than_batch("expert_00", 32, 32) is None
    assert smaller_than_batch("seed", 1, 32) == (
        "seed: 1 training sample(s), fewer than one batch of 32 (train.batch_size); each step repeats them")


def test_commonpool_samples_the_metadata_lacks_are_counted(tmp_path):
    files = _run_files(tmp_path)
    chunks = [_write(tmp_path / "pool" / "index" / f"{i:05d}.json",
                     {"absent_from_metadata": n, "absent_examples": [f"uid{i}{j}" for j in range(n)]})
              for i, n in enumerate((2, 0, 1))]
    health = collect_health(**files, global_batch=32, pool_index_chunks=chunks)
    [warning] = health["warnings"]
    assert (warning["what"], warning["count"]) == ("absent_from_metadata", 3)
    assert warning["items"] == ["uid00", "uid01", "uid20"]
