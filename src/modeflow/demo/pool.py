"""generate_demo_pool: the embedded demo pool, built offline and deterministically from a seed.

Output directory (written atomically):
    images/<tag><row>.png   what the loopback server serves (dead links have no file); <tag> is
                            empty for the default pool (DEFAULT_DOMAINS, seed 0), else it names the
                            domains and seed (pool_tag): pools of other domains or seeds share no
                            url, hence no uid, with it nor with each other
    urls.parquet            uid, url, caption: all the pipeline reads
    ground_truth.parquet    uid, row, domain, label, noise, duplicate_of: for scoring only
    tasks/<name>/           held-out clip_benchmark wds tasks (one per domain, mixed, retrieval)
    demo.json               parameters, counts, class names, tasks, and the pool's structure
                            (classes per domain, caption repeat rate, same-class partners per
                            one-domain batch: modeflow.demo.structure)
Pool and held-out images come from separate random streams of the seed (and held-out digits from
separate scikit-learn samples), and a held-out image is never byte-identical to a pool image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.atomic import atomic_dir
from modeflow.common.errors import ConfigError
from modeflow.demo.httpserver import DEMO_HOST
from modeflow.common.uids import derive_uid
from . import vocab
from .domains import DEFAULT_DOMAINS, DOMAINS, Domain
from .noise import NOISE_KINDS, corrupt_bytes, encode_png, noise_counts, squash, tiny_side
from .structure import pool_structure
from .wds import write_classification_task, write_retrieval_task

URL_PREFIX = f"http://{DEMO_HOST}/images/"
# Independent random streams of one seed: adding a task never changes the pool, and vice versa.
_POOL, _EVAL, _MIXED, _RETRIEVAL = range(4)
_MAX_REDRAWS = 1000


@dataclass
class _Row:
    kind: str
    domain: Domain
    label: int
    params: dict | None = None
    data: bytes | None = None  # file content; None for dead links
    caption: str = ""
    duplicate_of: int | None = None  # row of the original


class _UniqueImages:
    """Draws images of a class until one's bytes are new, so clean rows never collide by chance
    (that would make exact-dedup remove clean data) and held-out images never equal pool ones."""

    def __init__(self):
        self.seen: set[bytes] = set()

    def draw(self, domain: Domain, label: int, rng, split: str, make) -> tuple[dict, bytes]:
        for _ in range(_MAX_REDRAWS):
            params = domain.sample(label, rng, split)
            data = make(params)
            digest = hashlib.sha256(data).digest()
            if digest not in self.seen:
                self.seen.add(digest)
                return params, data
        raise ConfigError(f"demo pool: cannot draw a new {domain.name}/{domain.classes[label]} image; "
                          "pool.demo.image_size is too small for pool.demo.num_samples")


def _validate(num_samples, domains, image_size, noise_fraction, eval_images_per_class, retrieval_pairs):
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown or not domains or len(set(domains)) != len(domains):
        raise ConfigError(f"pool.demo.domains: {list(domains)} must be distinct names from {list(DOMAINS)}")
    if image_size < 16:
        raise ConfigError(f"pool.demo.image_size: {image_size} < 16")
    if not 0 <= noise_fraction <= 0.9:
        raise ConfigError(f"pool.demo.noise_fraction: {noise_fraction} not in [0, 0.9]")
    for key, value in [("num_samples", num_samples), ("eval_images_per_class", eval_images_per_class),
                       ("retrieval_pairs", retrieval_pairs)]:
        if value < 1:
            raise ConfigError(f"pool.demo.{key}: {value} < 1")


def _plan_rows(rng, num_samples, domains: list[Domain], counts: dict[str, int]) -> list[_Row]:
    """Kind, domain and class of every row, in urls.parquet order. Domains are spread evenly over
    every kind, and classes evenly over each (domain, kind) — so the clean rows hold every class
    once a domain has as many clean rows as classes; then the rows are shuffled."""
    kinds = np.repeat(list(counts), list(counts.values()))
    dom = np.arange(num_samples) % len(domains)
    labels = np.zeros(num_samples, dtype=int)
    for d, domain in enumerate(domains):
        for kind in counts:
            where = np.flatnonzero((dom == d) & (kinds == kind))
            n = len(domain.classes)
            labels[where] = rng.permutation((np.arange(len(where)) + int(rng.integers(n))) % n)
    order = rng.permutation(num_samples)
    rows = [_Row(str(kinds[i]), domains[dom[i]], int(labels[i])) for i in order]
    # A duplicate copies a clean row's image: it takes that row's domain and class.
    clean = [r for r, row in enumerate(rows) if row.kind == "clean"]
    dups = [r for r, row in enumerate(rows) if row.kind == "duplicate"]
    if dups and not clean:
        raise ConfigError("pool.demo: no clean rows to duplicate; lower noise_fraction or raise num_samples")
    originals = rng.choice(clean, size=len(dups), replace=len(dups) > len(clean)) if dups else []
    for r, original in zip(dups, originals):
        rows[r].domain, rows[r].label = rows[original].domain, rows[original].label
        rows[r].duplicate_of = int(original)
    return rows


def _mismatched_caption(row: _Row, domains: list[Domain], rng) -> str:
    """A correct caption of another domain (another class when there is only one domain)."""
    others = [d for d in domains if d is not row.domain]
    if others:
        other = others[int(rng.integers(len(others)))]
        label = int(rng.integers(len(other.classes)))
    else:
        other = row.domain
        label = (row.label + 1 + int(rng.integers(len(other.classes) - 1))) % len(other.classes)
    return other.describe(other.sample(label, rng, "pool"), rng)


def _encoder(kind: str, domain: Domain, size: int, rng):
    """params → the PNG bytes of a row's image: tiny and extreme-aspect rows draw differently."""
    if kind == "tiny":
        return lambda p: encode_png(domain.render(p, tiny_side(size)))
    if kind == "extreme_aspect":
        return lambda p: encode_png(squash(domain.render(p, size), rng))
    return lambda p: encode_png(domain.render(p, size))


def _fill_row(row: _Row, domains, rng, image_size: int, images: _UniqueImages) -> None:
    """Draw the row's image (or its broken bytes) and caption, by noise kind."""
    d = row.domain
    make = _encoder(row.kind, d, image_size, rng)
    if row.kind == "dead_link":
        row.params = d.sample(row.label, rng, "pool")
    elif row.kind == "corrupt":
        row.params = d.sample(row.label, rng, "pool")
        row.data = corrupt_bytes(make(row.params), rng)
    else:
        row.params, row.data = images.draw(d, row.label, rng, "pool", make)
    if row.kind == "mismatched":
        row.caption = _mismatched_caption(row, domains, rng)
    elif row.kind == "non_english":
        row.caption = vocab.FOREIGN[d.name][int(rng.integers(len(vocab.FOREIGN[d.name])))]
    elif row.kind == "too_short":
        row.caption = vocab.SHORT[int(rng.integers(len(vocab.SHORT)))]
    else:
        row.caption = d.describe(row.params, rng)


def pool_tag(domains, seed: int) -> str:
    """What a pool's image names start with: "" for the default pool (DEFAULT_DOMAINS in their
    order, seed 0: its urls and so its uids stay what they always were), else
    "<domain>-<domain>-...-seed<seed>-". A uid hashes url and caption, and two pools can give the
    same row the same caption (a too-short "img", a caption of the same class), so pools that are
    meant to be combined — a fifth domain's data added to a finished default mixture — must
    differ in their urls; the tag makes every (domains, seed) pool's urls its own."""
    if list(domains) == list(DEFAULT_DOMAINS) and seed == 0:
        return ""
    return "-".join(domains) + f"-seed{seed}-"


def _build_pool(out: Path, rng, rows: list[_Row], domains, image_size, images: _UniqueImages,
                tag: str = "") -> dict:
    for row in rows:
        if row.kind != "duplicate":
            _fill_row(row, domains, rng, image_size, images)
    for row in rows:  # after their originals exist
        if row.kind == "duplicate":
            original = rows[row.duplicate_of]
            row.params, row.data = original.params, original.data
            row.caption = row.domain.describe(row.params, rng)

    width = max(6, len(str(len(rows) - 1)))
    names = [f"{tag}{r:0{width}d}.png" for r in range(len(rows))]
    (out / "images").mkdir()
    for name, row in zip(names, rows):
        if row.data is not None:
            (out / "images" / name).write_bytes(row.data)
    urls = [URL_PREFIX + name for name in names]
    uids = [derive_uid(url, row.caption) for url, row in zip(urls, rows)]
    pq.write_table(pa.table({"uid": uids, "url": urls, "caption": [row.caption for row in rows]}),
                   out / "urls.parquet")
    no_image = ("dead_link", "corrupt")
    pq.write_table(pa.table({
        "uid": uids,
        "row": pa.array(range(len(rows)), pa.int64()),
        "domain": [row.domain.name for row in rows],
        "label": pa.array(
            [None if row.kind in no_image else row.domain.classes[row.label] for row in rows], pa.string()),
        "noise": [row.kind for row in rows],
        "duplicate_of": pa.array(
            [None if row.duplicate_of is None else uids[row.duplicate_of] for row in rows], pa.string()),
    }), out / "ground_truth.parquet")
    clean = [row for row in rows if row.kind == "clean"]
    return {
        "rows": len(rows),
        "images_written": sum(row.data is not None for row in rows),
        "per_domain": {d.name: sum(row.domain is d for row in rows) for d in domains},
        "per_noise": {kind: sum(row.kind == kind for row in rows) for kind in ("clean", *NOISE_KINDS)},
        "structure": pool_structure([row.caption for row in clean], [row.domain.name for row in clean],
                                    [row.domain.classes[row.label] for row in clean],
                                    {d.name: d.classes for d in domains}),
    }


def _classification_images(rng, members: list[tuple[Domain, int]], per_class, image_size, images):
    """per_class held-out images of each (domain, class) member; label = index into members."""
    pngs, labels = [], []
    for index, (domain, label) in enumerate(members):
        for _ in range(per_class):
            _, png = images.draw(domain, label, rng, "eval", _encoder("clean", domain, image_size, rng))
            pngs.append(png)
            labels.append(index)
    order = rng.permutation(len(pngs))
    return [pngs[i] for i in order], [labels[i] for i in order]


def _build_tasks(out: Path, seed, domains: list[Domain], image_size, per_class, retrieval_pairs,
                 images: _UniqueImages) -> list[dict]:
    tasks = []
    rng = np.random.default_rng([seed, _EVAL])
    for domain in domains:
        members = [(domain, label) for label in range(len(domain.classes))]
        pngs, labels = _classification_images(rng, members, per_class, image_size, images)
        info = write_classification_task(out / "tasks" / domain.name, pngs, labels, domain.classes,
                                         domain.prompts)
        tasks.append({"name": domain.name, "path": f"tasks/{domain.name}", **info})

    rng = np.random.default_rng([seed, _MIXED])
    members = [(domain, label) for domain in domains for label in range(len(domain.classes))]
    pngs, labels = _classification_images(rng, members, per_class, image_size, images)
    names = [domain.mixed_name(label) for domain, label in members]
    info = write_classification_task(out / "tasks" / "mixed", pngs, labels, names, vocab.MIXED_PROMPTS)
    tasks.append({"name": "mixed", "path": "tasks/mixed", **info})

    rng = np.random.default_rng([seed, _RETRIEVAL])
    pngs, captions = [], []
    for i in range(retrieval_pairs):
        domain = domains[i % len(domains)]
        label = int(rng.integers(len(domain.classes)))
        params, png = images.draw(domain, label, rng, "eval", _encoder("clean", domain, image_size, rng))
        pngs.append(png)
        captions.append(domain.describe(params, rng))
    info = write_retrieval_task(out / "tasks" / "retrieval", pngs, captions)
    tasks.append({"name": "retrieval", "path": "tasks/retrieval", **info})
    return tasks


def generate_demo_pool(out_dir, *, seed: int = 0, num_samples: int = 12000,
                       domains=DEFAULT_DOMAINS, image_size: int = 64,
                       noise_fraction: float = 0.2, eval_images_per_class: int = 10,
                       retrieval_pairs: int = 400) -> dict:
    """Build the demo pool into `out_dir` (replaced atomically); return the summary in demo.json."""
    domains = list(domains)
    _validate(num_samples, domains, image_size, noise_fraction, eval_images_per_class, retrieval_pairs)
    doms = [DOMAINS[name] for name in domains]
    counts = noise_counts(num_samples, noise_fraction)
    images = _UniqueImages()
    with atomic_dir(out_dir) as tmp:
        rng = np.random.default_rng([seed, _POOL])
        rows = _plan_rows(rng, num_samples, doms, counts)
        pool = _build_pool(tmp, rng, rows, doms, image_size, images, pool_tag(domains, seed))
        tasks = _build_tasks(tmp, seed, doms, image_size, eval_images_per_class, retrieval_pairs, images)
        summary = {
            "seed": seed,
            "parameters": {"num_samples": num_samples, "domains": domains, "image_size": image_size,
                           "noise_fraction": noise_fraction, "eval_images_per_class": eval_images_per_class,
                           "retrieval_pairs": retrieval_pairs},
            "url_prefix": URL_PREFIX,
            "tiny_side": tiny_side(image_size),
            **pool,
            "classnames": {d.name: d.classes for d in doms},
            "tasks": tasks,
        }
        (tmp / "demo.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
