"""Benchmark: DataComp's basic_filter and clip_score computed from CommonPool metadata
(modeflow.filter.datacomp_baselines.metadata_subset) against a straightforward pandas, row-by-row
implementation of DataComp's rules (`baselines/apply_filter.py`: load_uids_with_basic_filter_helper,
get_threshold + load_uids_with_clip_score_helper), kept here as the baseline, on the same parquets
in the same run (interleaved, best of --rounds). Both read the parquets from disk and return the
sorted u8,u8 subset; the outputs are checked equal.

Synthetic metadata: DataComp's columns, --rows rows in --parts parquets; captions are mostly
distinct (random words from a vocabulary, ~15% exact repeats, a share in other languages), image
sizes spread around basic_filter's cut-offs. Bar: rows/s ratio >= 2 for each filter (exit 1 below
it, or when the subsets differ). Also printed: the language id's share of modeflow's basic_filter
time. Notes and recorded figures: bench/README.md.

    .venv/bin/python bench/bench_filter.py [--rows 1000000] [--parts 8] [--rounds 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.filter import langid
from modeflow.filter import datacomp_baselines as baselines
from modeflow.filter.datacomp_baselines import metadata_subset
from modeflow.pool.datacomp import CommonPool

BASIC = {"language": "en", "min_words": 3, "min_chars": 6, "min_image_side": 200, "max_aspect_ratio": 3.0}
CLIP = {"kind": "clip_score", "arch": "l14", "fraction": 0.3}


def make_metadata(directory: Path, rows: int, parts: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(3000)] + "the a of photo dog cat car red blue house beach on in with for sale new".split())
    foreign = ["une photo de", "ein Bild von", "foto di", "写真", "фото"]
    for part in range(parts):
        n = rows // parts + (part < rows % parts)
        lengths = rng.integers(1, 14, n)
        words = rng.choice(vocab, (n, 14))
        texts = [" ".join(w[:k]) for w, k in zip(words, lengths)]
        other = np.flatnonzero(rng.random(n) < 0.2)
        for i in other:
            texts[i] = f"{foreign[i % len(foreign)]} {texts[i]}"
        repeat = np.flatnonzero(rng.random(n) < 0.15)
        for i in repeat:
            texts[i] = texts[int(rng.integers(max(i, 1)))]
        uid_bytes = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        uids = [b.tobytes().hex() for b in uid_bytes]
        w = rng.choice([64, 150, 199, 200, 256, 512, 640, 1024], n)
        h = np.where(rng.random(n) < 0.1, w * 4, rng.choice([120, 200, 300, 480, 600, 800], n))
        pq.write_table(pa.table({
            "uid": pa.array(uids, pa.string()),
            "url": pa.array([f"http://example.invalid/{part}/{i}.jpg" for i in range(n)], pa.string()),
            "text": pa.array(texts, pa.string()),
            "original_width": pa.array(w, pa.int64()),
            "original_height": pa.array(h, pa.int64()),
            "sha256": pa.array(uids, pa.string()),
            "clip_b32_similarity_score": pa.array(np.round(rng.uniform(0.1, 0.45, n), 4), pa.float64()),
            "clip_l14_similarity_score": pa.array(np.round(rng.uniform(0.1, 0.45, n), 4), pa.float64()),
            "face_bboxes": pa.array([[] for _ in range(n)], pa.list_(pa.list_(pa.float64()))),
        }), directory / f"{part:016x}.parquet")


# --- the baseline: DataComp's rules as apply_filter.py writes them, pandas, row by row -----------

def _pairs(uids) -> np.ndarray:
    uid_int = uids.apply(int, base=16)
    hi = (uid_int // 2**64).astype("uint64")
    lo = (uid_int % 2**64).astype("uint64")
    return np.array(list(zip(hi, lo)), "u8,u8")


def baseline_basic_filter(parquets, model) -> np.ndarray:
    out = []
    for url in parquets:
        df = pd.read_parquet(url, columns=["uid", "text", "original_width", "original_height"])
        lang = df.text.apply(lambda x: model.predict(x.replace("\n", " "))[0][0].split("__label__")[1])
        words = df.text.apply(lambda x: len(x.split()))
        chars = df.text.apply(lambda x: len(x))
        inds = _pairs(df.uid)
        min_dim = np.minimum(df.original_width, df.original_height)
        max_dim = np.maximum(df.original_width, df.original_height)
        mask = (lang == "en") & (words > 2) & (chars > 5) & (min_dim >= 200) & (max_dim / min_dim <= 3.0)
        out.append(inds[mask])
    uids = np.concatenate(out)
    uids.sort()
    return uids


def baseline_clip_score(parquets, key: str, fraction: float) -> np.ndarray:
    scores = pd.concat([pd.read_parquet(p, columns=[key]) for p in parquets])
    threshold = -np.sort(-scores[key].values)[int(len(scores) * fraction)]
    out = []
    for url in parquets:
        df = pd.read_parquet(url, columns=["uid", key])
        out.append(np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in df[df[key] >= threshold]["uid"].values],
                            np.dtype("u8,u8")))
    uids = np.concatenate(out)
    uids.sort()
    return uids


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        meta = Path(tmp) / "metadata"
        meta.mkdir()
        t, _ = timed(lambda: make_metadata(meta, args.rows, args.parts))
        print(f"synthetic metadata: {args.rows} rows in {args.parts} parquets ({t:.1f} s)")
        pool = CommonPool.open(str(meta))
        import fasttext

        model = fasttext.load_model(str(langid.bundled_fasttext_model()))
        best = {k: float("inf") for k in ("basic", "basic_ref", "clip", "clip_ref")}
        lang = {"s": 0.0, "rows": 0, "share": 1.0}
        detect = baselines.fasttext_languages

        def timed_detect(texts, model_path=None):  # the language id's time inside modeflow's arm
            start = time.perf_counter()
            out = detect(texts, model_path)
            lang["s"] += time.perf_counter() - start
            lang["rows"] += len(texts)
            return out

        baselines.fasttext_languages = timed_detect
        ok = True
        for r in range(args.rounds):
            arms = [("basic", lambda: metadata_subset("basic_filter", {"kind": "basic_filter"}, pool, basic=BASIC)[0]),
                    ("basic_ref", lambda: baseline_basic_filter(pool.parquets, model)),
                    ("clip", lambda: metadata_subset("clip_score", CLIP, pool)[0]),
                    ("clip_ref", lambda: baseline_clip_score(pool.parquets, "clip_l14_similarity_score", 0.3))]
            if r % 2:
                arms = arms[1::-1] + arms[:1:-1]  # alternate which arm of each pair goes first
            results = {}
            for name, fn in arms:
                lang["s"], lang["rows"] = 0.0, 0
                t, results[name] = timed(fn)
                if name == "basic":
                    lang["share"] = min(lang["share"], lang["s"] / t)
                    lang_rows = lang["rows"]
                best[name] = min(best[name], t)
            ok &= np.array_equal(results["basic"], results["basic_ref"]) and np.array_equal(results["clip"], results["clip_ref"])
        n = args.rows
        print(f"basic_filter: modeflow {n / best['basic']:,.0f} rows/s, DataComp pandas row-by-row "
              f"{n / best['basic_ref']:,.0f} rows/s, ratio {best['basic_ref'] / best['basic']:.2f} (bar >= 2)")
        print(f"  language id: {100 * lang['share']:.0f}% of modeflow's basic_filter time, on the "
              f"{lang_rows:,} rows ({100 * lang_rows / n:.0f}%) that pass the other rules")
        print(f"clip_score (l14, fraction 0.3): modeflow {n / best['clip']:,.0f} rows/s, DataComp pandas "
              f"{n / best['clip_ref']:,.0f} rows/s, ratio {best['clip_ref'] / best['clip']:.2f} (bar >= 2)")
        if not ok:
            print("FAIL: modeflow's subsets differ from the baseline's")
            return 1
        ratios = (best["basic_ref"] / best["basic"], best["clip_ref"] / best["clip"])
        if min(ratios) < 2:
            print("FAIL: a ratio is below 2")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
