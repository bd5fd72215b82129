"""A synthetic DataComp CommonPool, in DataComp's formats, for the tests and bench/bench_filter.py.

- `metadata/<16 hex>.parquet`: DataComp's columns (uid as 32 hex chars, url, text, original_width,
  original_height, sha256, clip_b32_similarity_score, clip_l14_similarity_score, face_bboxes);
- `metadata/<same>.npz`: b32_img, b32_txt (512-d), l14_img, l14_txt (768-d), float16, one row per
  parquet row in the parquet's order;
- `shards/`: img2dataset output (tar + parquet + _stats.json) for some rows of the first part, as
  DataComp's download_upstream.py writes it (save_additional_columns=["uid"]);
- `wordnet/`: a tiny WordNet 3.0-format database (index.*, data.*, *.exc; no lexnames, like
  Debian's wordnet-base) and `imagenet21k_wordnet_ids.txt`, a synset list in DataComp's format;
- `centroids.npy` (pool centroids of the L/14 image features) and `in1k_features.npy` (target
  features near a few of them), the image_based baseline's two assets.

Captions mix English templates with ImageNet-like nouns, other languages, all-caps alt-text,
newlines, short captions and repeats; scores are rounded so that ties sit at the thresholds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# (lemma, pos, gloss) per synset, in the order the index lists them; a lemma with several entries
# has several senses (its first is the one DataComp's rule uses)
WORDNET_SYNSETS = [
    ("dog", "n", "a domestic canine"), ("dog", "n", "a dull unattractive person"), ("dog", "v", "to follow"),
    ("cat", "n", "a feline"), ("mouse", "n", "a small rodent"), ("car", "n", "a motor vehicle"),
    ("beach", "n", "a shore of sand"), ("house", "n", "a dwelling"), ("goldfish", "n", "a small fish"),
    ("run", "v", "move fast on foot"), ("run", "n", "a score in baseball"),
    ("red", "a", "of the colour of blood"), ("red", "n", "the colour"), ("quickly", "r", "with speed"),
    ("photo", "n", "a photograph"), ("tree", "n", "a tall plant"), ("chat", "n", "an informal talk"),
]
# first senses that are ImageNet-21k classes (by lemma); "run" (verb first), "red" (noun second) not
IMAGENET_LEMMAS = ("dog", "cat", "mouse", "goldfish", "car", "tree")
NOUN_EXCEPTIONS = {"mice": "mouse"}

ENGLISH = ["a photo of a {} on the beach", "my {} in front of the house", "THE {} PARKED OUTSIDE",
           "{}", "a {}\nnear a tree", "cute\u00a0{} picture", "two {}s playing together", "a red {} running quickly",
           "{}, for sale", "close-up of the {}"]
OTHER = ["une photo de mon {} sur la plage", "ein schönes Bild von meinem {}", "foto di un {} sulla spiaggia",
         "猫の写真 {}", "{} {}"]
NOUNS = ["dog", "cat", "mouse", "car", "beach", "house", "goldfish", "tree", "photo", "chat", "lamp", "idea"]


def write_wordnet(directory: Path, *, lexnames: bool = False) -> dict[str, int]:
    """The tiny WordNet database; returns {"lemma.pos.n": offset}. Offsets are the byte offsets of
    the synset lines in data.<pos>, as in WordNet (NLTK seeks to them)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
    lexfile = {"n": 5, "v": 38, "a": 0, "r": 2}
    offsets, index = {}, {p: {} for p in names}
    for pos, name in names.items():
        header = "  1 synthetic WordNet 3.0 format database for tests\n"
        data = header.encode()
        sense = {}
        for lemma, p, gloss in WORDNET_SYNSETS:
            if p != pos:
                continue
            sense[lemma] = sense.get(lemma, 0) + 1
            offset = len(data)
            frames = " 00" if pos == "v" else ""
            line = f"{offset:08d} {lexfile[pos]:02d} {pos} 01 {lemma} 0 000{frames} | {gloss}  \n"
            data += line.encode()
            offsets[f"{lemma}.{pos}.{sense[lemma]}"] = offset
            index[pos].setdefault(lemma, []).append(offset)
        (directory / f"data.{name}").write_bytes(data)
        lines = [header] + [f"{lemma} {pos} {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "  \n"
                            for lemma, offs in sorted(index[pos].items())]
        (directory / f"index.{name}").write_text("".join(lines))
        exc = NOUN_EXCEPTIONS if pos == "n" else {}
        (directory / f"{name}.exc").write_text("".join(f"{k} {v}\n" for k, v in sorted(exc.items())))
    if lexnames:
        from modeflow.filter.wordnet import LEXNAMES

        (directory / "lexnames").write_text(LEXNAMES)
    return offsets


@dataclass(frozen=True)
class CommonPoolFixture:
    root: Path
    metadata: Path
    parquets: list[Path]
    shards: Path
    wordnet: Path
    synsets: Path
    centroids: Path
    targets: Path
    target_centroids: tuple[int, ...]
    absent_uids: tuple[str, ...]  # uids in the shards that no metadata row has


def _uid(rng) -> str:
    return "".join(f"{b:02x}" for b in rng.integers(0, 256, 16, dtype=np.uint8))


def captions(rng, n: int) -> list[str]:
    """Web-like captions: ~70% English templates, the rest other languages or junk, ~20% repeats."""
    out = []
    for _ in range(n):
        if out and rng.random() < 0.2:
            out.append(out[int(rng.integers(len(out)))])
            continue
        noun = NOUNS[int(rng.integers(len(NOUNS)))]
        pool = ENGLISH if rng.random() < 0.7 else OTHER
        template = pool[int(rng.integers(len(pool)))]
        out.append(template.format(noun, noun) if template.count("{}") == 2 else template.format(noun))
    return out


def metadata_table(rng, n: int) -> pa.Table:
    """n rows of CommonPool metadata in DataComp's column order and types."""
    texts = captions(rng, n)
    w = rng.choice([64, 150, 199, 200, 256, 512, 640, 1024, 1500], n)
    h = np.where(rng.random(n) < 0.1, w * 4, rng.choice([0, 180, 200, 300, 480, 600, 800], n, p=[.01, .09, .1, .2, .2, .2, .2]))
    b32 = np.round(rng.uniform(0.1, 0.45, n), 2).astype(np.float32)
    l14 = np.round(rng.uniform(0.1, 0.45, n), 2).astype(np.float32)
    faces = [[[0.1, 0.1, 0.3, 0.4]] if rng.random() < 0.1 else [] for _ in range(n)]
    return pa.table({
        "uid": pa.array([_uid(rng) for _ in range(n)], pa.string()),
        "url": pa.array([f"http://example.invalid/{i}.jpg" for i in range(n)], pa.string()),
        "text": pa.array(texts, pa.string()),
        "original_width": pa.array(w, pa.int64()),
        "original_height": pa.array(h, pa.int64()),
        "sha256": pa.array([hashlib.sha256(f"{i}".encode()).hexdigest() for i in range(n)], pa.string()),
        "clip_b32_similarity_score": pa.array(b32, pa.float32()),
        "clip_l14_similarity_score": pa.array(l14, pa.float32()),
        "face_bboxes": pa.array(faces, pa.list_(pa.list_(pa.float64()))),
    })


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _image(rng, side: int = 32) -> bytes:
    """A decodable JPEG: a random colour with a lighter square, for the stages that train on images."""
    from fixtures import jpeg

    pixels = np.empty((side, side, 3), np.uint8)
    pixels[:] = rng.integers(0, 200, 3, dtype=np.uint8)
    x, y = rng.integers(0, side // 2, 2)
    pixels[y:y + side // 2, x:x + side // 2] += 55
    return jpeg(pixels)


def make_commonpool(root: Path, *, rows: int = 600, parts: int = 3, seed: int = 0, num_centroids: int = 8,
                    shard_rows: int | None = 40, shard_size: int = 20, images: bool = False) -> CommonPoolFixture:
    """Write the synthetic pool under `root` (see the module docstring). shard_rows: the rows of the
    first part that the shards hold (None: every row of every part, in metadata order, as DataComp's
    download_upstream.py downloads the whole directory); images: decodable JPEGs instead of stand-ins."""
    from fixtures import FAKE_JPG, Sample, write_shards

    rng = np.random.default_rng(seed)
    metadata = root / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    centroids = _unit(rng.normal(size=(num_centroids, 768))).astype(np.float32)
    parquets = []
    per_part = [rows // parts + (1 if i < rows % parts else 0) for i in range(parts)]
    for n in per_part:
        table = metadata_table(rng, n)
        stem = "".join(f"{b:02x}" for b in rng.integers(0, 256, 8, dtype=np.uint8))
        path = metadata / f"{stem}.parquet"
        pq.write_table(table, path)
        cluster = rng.integers(0, num_centroids, n)
        l14_img = _unit(centroids[cluster] + rng.normal(scale=0.02, size=(n, 768))).astype(np.float16)
        np.savez(metadata / f"{stem}.npz",
                 b32_img=_unit(rng.normal(size=(n, 512))).astype(np.float16),
                 b32_txt=_unit(rng.normal(size=(n, 512))).astype(np.float16),
                 l14_img=l14_img,
                 l14_txt=_unit(rng.normal(size=(n, 768))).astype(np.float16))
        parquets.append(path)
    parquets.sort()
    target_centroids = (0, 2, 5)
    targets = _unit(centroids[np.repeat(target_centroids, 10)] + rng.normal(scale=0.02, size=(30, 768)))
    np.save(root / "centroids.npy", centroids)
    np.save(root / "in1k_features.npy", targets.astype(np.float32))

    if shard_rows is None:
        first = pa.concat_tables(pq.read_table(p) for p in parquets)
    else:
        first = pq.read_table(parquets[0]).slice(0, shard_rows)
    absent = tuple(_uid(rng) for _ in range(2))
    image_rng = np.random.default_rng(seed + 1)
    picture = (lambda: _image(image_rng)) if images else (lambda: FAKE_JPG)
    samples = [Sample(key=f"{i:09d}", caption=t, uid=u, url=url, jpg=picture(),
                      status="success" if i % 7 != 3 else "failed_to_download")
               for i, (u, t, url) in enumerate(zip(first["uid"].to_pylist(), first["text"].to_pylist(),
                                                   first["url"].to_pylist()))]
    samples += [Sample(key=f"{first.num_rows + i:09d}", caption="a stray sample", uid=u, jpg=picture())
                for i, u in enumerate(absent)]
    write_shards(root / "shards", samples, shard_size, metadata=True)

    wordnet = root / "wordnet"
    offsets = write_wordnet(wordnet)
    synsets = root / "imagenet21k_wordnet_ids.txt"
    synsets.write_text("".join(f"n{offsets[f'{lemma}.n.1']:08d}\n" for lemma in IMAGENET_LEMMAS))
    return CommonPoolFixture(root=root, metadata=metadata, parquets=parquets, shards=root / "shards",
                             wordnet=wordnet, synsets=synsets, centroids=root / "centroids.npy",
                             targets=root / "in1k_features.npy", target_centroids=target_centroids,
                             absent_uids=absent)


def write_text_tower(directory: Path, dim: int = 768, seed: int = 0) -> tuple[Path, Path]:
    """A tiny random open_clip model whose text tower embeds in `dim` dims (the npz features' space),
    as a model-config json and a local checkpoint: the class-name encoder of embed.encoder
    precomputed in the tests. Returns (config json, checkpoint)."""
    import json

    import open_clip
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    config = {"embed_dim": dim,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 16, "patch_size": 16},
              "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = directory / f"modeflow-test-text-{dim}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(path.stem)
    checkpoint = directory / f"{path.stem}.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return path, checkpoint
