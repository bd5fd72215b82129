"""Download benchmark: modeflow's sharded download against a plain img2dataset run, same run.

A loopback pool of small PNG/JPEG images (urls `http://modeflow-demo.invalid/images/<file>`, served
by one `serve_demo` proxy for both arms) is downloaded by
  (a) baseline: `img2dataset.download(**img2dataset_args(...))` on the whole pool table as one
      parquet, with the proxy set the way download.py sets it;
  (b) modeflow: `download_shards(...)` over all shards (staging, global shard names, key-ordered
      tar/parquet rewrite, empty-shard handling).
The arms are interleaved (a, b, a, b) and each keeps its best time. Printed: samples/s of each and
the ratio b/a. Acceptance: ratio >= 0.9 (the bookkeeping costs at most 10 %); exit 1 otherwise.
Figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_download.py [--samples 5000] [--shard-size 1000] [--threads 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

from modeflow.pool.download import _proxy_env, download_shards, img2dataset_args  # noqa: E402
from modeflow.demo.httpserver import DEMO_HOST, serve_demo  # noqa: E402
from modeflow.pool.plan import shard_name  # noqa: E402
from modeflow.common.uids import derive_uid  # noqa: E402

MIN_RATIO = 0.9
DISTINCT_IMAGES = 64  # encoded once each; files reuse their bytes (throughput, not content, matters)


def make_pool(root: Path, samples: int) -> Path:
    """images/<row>.png|jpg under root + the pool table sources.read_url_list would produce."""
    encoded = []
    for i in range(DISTINCT_IMAGES):
        fmt = "PNG" if i % 2 else "JPEG"
        buf = io.BytesIO()
        Image.new("RGB", (40 + i % 17, 32 + i % 11), (i * 4 % 256, 255 - i * 3 % 256, 90)).save(buf, fmt)
        encoded.append((fmt.lower().replace("jpeg", "jpg"), buf.getvalue()))
    (root / "images").mkdir(parents=True)
    urls, captions = [], []
    for row in range(samples):
        ext, data = encoded[row % DISTINCT_IMAGES]
        (root / "images" / f"{row:06d}.{ext}").write_bytes(data)
        urls.append(f"http://{DEMO_HOST}/images/{row:06d}.{ext}")
        captions.append(f"benchmark image {row} of pattern {row % DISTINCT_IMAGES}")
    table = pa.table({"row": pa.array(range(samples), pa.int64()),
                      "uid": [derive_uid(u, c) for u, c in zip(urls, captions)],
                      "url": urls, "caption": captions})
    pq.write_table(table, root / "pool.parquet")
    return root / "pool.parquet"


def run_baseline(pool: Path, out: Path, proxy: str, shard_size: int, options: dict) -> None:
    import img2dataset

    with _proxy_env(proxy):
        img2dataset.download(**img2dataset_args(pool, out, shard_size=shard_size, options=options))


def run_modeflow(pool: Path, out: Path, proxy: str, shard_size: int, options: dict, shards) -> dict:
    return download_shards(pool, shards, shard_size=shard_size, out_dir=out,
                           staging_dir=out.parent / "staging", options=options, proxy=proxy)


def count_successes(out: Path) -> int:
    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
               for p in out.glob("*.parquet"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    options = {"processes": 1, "threads": args.threads, "image_size": 32, "resize_mode": "border",
               "encode_format": "jpg", "retries": 0, "timeout": 10}
    shards = [shard_name(i) for i in range(-(-args.samples // args.shard_size))]

    import img2dataset  # noqa: F401  (its import, seconds, is paid here and not by the first arm)

    best = {"a": float("inf"), "b": float("inf")}
    with tempfile.TemporaryDirectory(prefix="bench_download.") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        pool = make_pool(tmp / "demo", args.samples)
        print(f"pool: {args.samples} samples, {len(shards)} shards of {args.shard_size}, "
              f"made in {time.perf_counter() - t0:.1f} s", flush=True)
        with serve_demo(tmp / "demo") as proxy:
            for rep in range(args.repeats):
                for arm in ("a", "b"):
                    out = tmp / f"{arm}{rep}" / "out"
                    start = time.perf_counter()
                    if arm == "a":
                        run_baseline(pool, out, proxy, args.shard_size, options)
                    else:
                        run_modeflow(pool, out, proxy, args.shard_size, options, shards)
                    seconds = time.perf_counter() - start
                    ok = count_successes(out)
                    if ok != args.samples:  # a failing arm would be fast for the wrong reason
                        print(f"arm {arm}: only {ok} of {args.samples} samples succeeded", file=sys.stderr)
                        return 1
                    best[arm] = min(best[arm], seconds)
                    print(f"  run {rep} arm {arm}: {seconds:.2f} s", flush=True)
                    shutil.rmtree(out.parent)
    rate = {arm: args.samples / s for arm, s in best.items()}
    ratio = rate["b"] / rate["a"]
    print(f"(a) img2dataset.download, one parquet: {rate['a']:.0f} samples/s (best {best['a']:.2f} s)")
    print(f"(b) modeflow download_shards:          {rate['b']:.0f} samples/s (best {best['b']:.2f} s)")
    print(f"ratio b/a: {ratio:.3f} (acceptance >= {MIN_RATIO})")
    return 0 if ratio >= MIN_RATIO else 1


if __name__ == "__main__":  # required: img2dataset's workers are spawned and re-import this file
    sys.exit(main())
