"""DataComp's clip_score filter: scoring a chunk, threshold / fraction, config checks."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fixtures import Sample, jpeg, write_shard
from modeflow.filter.clip_score import clip_score_keep, score_chunk
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.filter.build import build_subset
from modeflow.filter.subsets import check_subsets, depends_on_seed_scores, subset_inputs


def jpg(color) -> bytes:
    return jpeg(np.full((32, 32, 3), color, np.uint8))


def write_chunk(tmp_path, n=6, broken=None):
    """One shard of n samples and its embed uid table, listed in an order unlike the tar's."""
    tar = write_shard(tmp_path / "00000.tar", [
        Sample(f"{i:09d}", f"a red square number {i}", uid=f"{i:032x}",
               jpg=b"not a jpeg" if i == broken else jpg((40 * i, 0, 0))) for i in range(n)])
    order = list(reversed(range(n)))
    table = tmp_path / "embed.parquet"
    pq.write_table(pa.table({"uid": [f"{i:032x}" for i in order], "shard": ["00000"] * n,
                             "key": [f"{i:09d}" for i in order]}), table)
    return [str(tar)], table


@pytest.fixture(scope="module")
def tiny_clip():
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("modeflow-tiny-vit")
    return model, preprocess, open_clip.get_tokenizer("modeflow-tiny-vit")


def test_scores_follow_the_uid_table_and_equal_direct_cosines(tmp_path, tiny_clip):
    import torch

    model, preprocess, tokenizer = tiny_clip
    tars, table = write_chunk(tmp_path)
    scores = score_chunk(tars, table, model, preprocess, tokenizer, batch_size=4)
    assert scores["uid"].to_pylist() == pq.read_table(table)["uid"].to_pylist()
    i = 5  # first row of the table is sample 5
    image = preprocess(Image.open(io.BytesIO(jpg((200, 0, 0)))).convert("RGB"))[None]
    with torch.no_grad():
        a = torch.nn.functional.normalize(model.encode_image(image), dim=-1)
        b = torch.nn.functional.normalize(model.encode_text(tokenizer([f"a red square number {i}"])), dim=-1)
    assert scores["clip_score"][0].as_py() == pytest.approx(float((a * b).sum()), abs=1e-5)


def test_broken_image_names_the_sample(tmp_path, tiny_clip):
    model, preprocess, tokenizer = tiny_clip
    tars, table = write_chunk(tmp_path, broken=2)
    with pytest.raises(InputDataError, match=r"00000.tar: sample 000000002: image cannot be decoded"):
        score_chunk(tars, table, model, preprocess, tokenizer)


def test_threshold_and_fraction():
    scores = np.array([0.1, 0.4, 0.3, 0.3, 0.2], np.float32)
    keep, t = clip_score_keep(scores, threshold=0.3)
    assert keep.tolist() == [False, True, True, True, False] and t == 0.3
    keep, t = clip_score_keep(scores, fraction=0.4)  # top 40% of 5 = 2 samples; the tie at 0.3 is kept
    assert t == pytest.approx(0.3) and keep.sum() == 3
    keep, _ = clip_score_keep(scores, fraction=1.0)
    assert keep.all()
    with pytest.raises(ConfigError, match="exactly one"):
        clip_score_keep(scores, threshold=0.2, fraction=0.5)
    with pytest.raises(ConfigError, match="fraction"):
        clip_score_keep(scores, fraction=1.5)


def test_clip_subset_stats_and_empty_result():
    uids = [f"{i:032x}" for i in range(4)]
    attributes = pa.table({"uid": uids})
    scores = pa.table({"uid": uids, "clip_score": pa.array([0.5, 0.1, 0.3, 0.2], pa.float32())})
    pairs, stats = build_subset("clip", {"kind": "clip_score", "fraction": 0.5}, attributes=attributes, scores=scores)
    assert len(pairs) == 2 and stats["removed_by_rule"] == {"clip_score_below_threshold": 2}
    with pytest.raises(InputDataError, match="keeps none"):
        build_subset("clip", {"kind": "clip_score", "threshold": 0.9}, attributes=attributes, scores=scores)
    with pytest.raises(InputDataError, match="do not cover"):
        build_subset("clip", {"kind": "clip_score", "threshold": 0.1}, attributes=attributes, scores=scores.slice(1))


def test_config_checks_and_seed_dependency():
    subsets = {"basic": {"kind": "basic_filter"}, "clip": {"kind": "clip_score", "fraction": 0.3},
               "both": {"kind": "intersection", "of": ["basic", "clip"]},
               "ext": {"kind": "clip_score", "threshold": 0.28, "checkpoint": "/m/b32.pt", "model": "ViT-B-32"}}
    check_subsets({"use": "both", "subsets": subsets})
    assert depends_on_seed_scores(subsets, "both") and not depends_on_seed_scores(subsets, "basic")
    assert not depends_on_seed_scores(subsets, "ext")
    for bad, match in [({"kind": "clip_score"}, "exactly one"),
                       ({"kind": "clip_score", "fraction": 0.0}, "fraction"),
                       ({"kind": "clip_score", "threshold": 0.2, "checkpoint": "/x.pt"}, "model")]:
        with pytest.raises(ConfigError, match=match):
            check_subsets({"use": "c", "subsets": {"c": bad}})
    files = dict(attributes=["a0"], vectors=[], uid_tables=[], subset_path=None,
                 clip_scores=lambda name: [f"scores/{name}/c0.parquet"])
    assert subset_inputs(subsets, "clip", **files) == {"attributes": ["a0"], "scores": ["scores/clip/c0.parquet"]}
