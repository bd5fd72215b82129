"""Download pool rows into img2dataset webdataset shards under their global shard names.

How img2dataset numbers shards (img2dataset 1.47.0, reader.py): given a folder, it reads the
`*.parquet` files in sorted order and numbers output shards consecutively across them, each file
adding ceil(rows / number_sample_per_shard) — so a file of 0 rows adds none. We therefore stage one
input file per *non-empty* shard, holding at most shard_size rows: staged file i (`input/0000i`)
becomes img2dataset shard i, and `manifest.json` maps i back to the global name. Shards with no
rows never reach img2dataset; we write their empty tar/parquet/stats ourselves.

Resuming: img2dataset's incremental mode skips every shard whose `<id>_*.json` exists in its
output folder, and writes a shard's stats only after its tar and parquet are closed. Shards that
are already finished in out_dir get such a marker, so a rerun downloads only what is missing while
keeping the same numbering (and so the same sample keys). Files reach out_dir atomically (the tar
and parquet rewritten in key order, see modeflow.wds.tarwrite), stats last, and the staging folder is
removed only after every shard has moved.

Sample keys are img2dataset's: staged shard index * 10**digits(shard_size) + row within the shard,
so they are unique within a download job (a chunk of shards), not across the pool; the pool-wide
sample id is the json's `uid`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks online at import

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from modeflow.common.atomic import atomic_path, write_json, write_parquet  # noqa: E402
from modeflow.common.errors import InputDataError  # noqa: E402
from modeflow.common.plots import png_figure  # noqa: E402
from modeflow.wds.tarwrite import write_empty_tar, write_sorted_tar  # noqa: E402

log = logging.getLogger(__name__)

SUFFIXES = (".tar", ".parquet", "_stats.json")  # stats last: its presence means the shard is whole
# config key (download section) → img2dataset.download argument
OPTION_NAMES = {
    "processes": "processes_count",
    "threads": "thread_count",
    "image_size": "image_size",
    "resize_mode": "resize_mode",
    "resize_only_if_bigger": "resize_only_if_bigger",
    "encode_format": "encode_format",
    "encode_quality": "encode_quality",
    "retries": "retries",
    "timeout": "timeout",
}
# img2dataset.download's defaults for options modeflow passed only later
_IMG2DATASET_DEFAULTS = {"resize_only_if_bigger": False}
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


def img2dataset_args(url_list, output_folder, *, shard_size: int, options: dict, extra_cols=()) -> dict:
    """img2dataset.download keyword arguments for pool-table input and webdataset output.

    `options` is the config's download section; keys it does not map (shard_size, ...) are ignored.
    """
    args = {OPTION_NAMES[k]: v for k, v in options.items() if k in OPTION_NAMES}
    return {
        **args,
        "url_list": str(url_list),
        "output_folder": str(output_folder),
        "input_format": "parquet",
        "url_col": "url",
        "caption_col": "caption",
        "save_additional_columns": ["uid", *extra_cols],
        "output_format": "webdataset",
        "incremental_mode": "incremental",
        "number_sample_per_shard": shard_size,
        "enable_wandb": False,
        "distributor": "multiprocessing",
    }


def download_shards(pool_parquet, shard_names, *, shard_size: int, out_dir, staging_dir, options: dict,
                    proxy: str | None = None, extra_cols=(), store_dir=None) -> dict:
    """Make `{shard}.tar`, `{shard}.parquet` and `{shard}_stats.json` in out_dir for each shard.

    Shard s holds pool rows whose `row` is in [s * shard_size, (s + 1) * shard_size). `proxy`
    (an http://host:port url) carries every http url of this download. `staging_dir` must be
    private to this call; it is removed once every shard is in the store. Returns summarize() of
    the shards plus their names.

    `store_dir` keeps the downloaded shards outside out_dir, which a workflow manager may delete
    before rerunning the job: out_dir then gets hard links (or copies) of the store's files, and a
    rerun downloads only what the store lacks. A stored shard made with other rows or
    output-changing options stops the call (see _check_store) instead of being downloaded again.
    """
    shards = sorted((str(s) for s in shard_names), key=int)
    out_dir, staging = Path(out_dir), Path(staging_dir)
    store = Path(store_dir) if store_dir is not None else out_dir
    columns = ["uid", *extra_cols, "caption", "url"]  # img2dataset's own order (reader.column_list)
    per_shard = _rows_by_shard(pool_parquet, shards, shard_size, columns)
    nonempty = [s for s in shards if per_shard[s].num_rows]
    if store != out_dir:
        _check_store(store, shards, per_shard, _output_options(options, shard_size, extra_cols))
    todo = [s for s in nonempty if not _finished(store, s)]

    if todo:
        kwargs = img2dataset_args(staging / "input", staging / "output", shard_size=shard_size,
                                  options=options, extra_cols=extra_cols)
        _prepare_staging(staging, nonempty, per_shard, kwargs)
        local = {s: i for i, s in enumerate(nonempty)}
        output = staging / "output"
        if not all(_staged(output, local[s]) for s in todo):
            for s in nonempty:
                if s not in todo and not _staged(output, local[s]):
                    write_json(output / f"{local[s]:05d}_in_out_dir.json", {"shard": s})
            log.info("img2dataset: %d shard(s) to download in %s", len(todo), staging)
            _run_img2dataset(kwargs, proxy)
        for s in todo:
            _check_staged(output, local[s], s, per_shard[s].num_rows)
            _move_shard(output, local[s], store, s)
        shutil.rmtree(staging)

    for s in shards:
        if not per_shard[s].num_rows and not _finished(store, s):
            _write_empty_shard(store, s, per_shard[s].schema)
    if store != out_dir:
        _link_shards(store, out_dir, shards)
    summary = summarize([out_dir / f"{s}_stats.json" for s in shards])
    if summary["count"] and not summary["successes"]:
        # Recorded, not lost, but almost always a setup problem (proxy, demo root, network).
        log.warning("no sample of shards %s..%s downloaded; most frequent failure: %s",
                    shards[0], shards[-1], next(iter(summary["failure_reasons"]), None))
    return {"shard_names": shards, **summary}


def _rows_by_shard(pool_parquet, shards, shard_size, columns) -> dict[str, pa.Table]:
    lo, hi = int(shards[0]) * shard_size, (int(shards[-1]) + 1) * shard_size
    table = pq.read_table(pool_parquet, columns=["row", *columns],
                          filters=[("row", ">=", lo), ("row", "<", hi)])
    rows = table.column("row").to_numpy()
    return {
        s: table.filter(pa.array((rows >= int(s) * shard_size) & (rows < (int(s) + 1) * shard_size)))
        .select(columns).combine_chunks()
        for s in shards
    }


def _finished(out_dir: Path, shard: str) -> bool:
    return all((out_dir / f"{shard}{suffix}").exists() for suffix in SUFFIXES)


# img2dataset settings that change how fast a download runs or how hard it tries, not the bytes of
# an image it got: a change of these keeps the shards already downloaded
_RUN_ONLY_ARGS = ("url_list", "output_folder", "processes_count", "thread_count", "retries", "timeout")
STORE_RECORD = "download_settings.json"


def _output_options(options: dict, shard_size: int, extra_cols) -> dict:
    """The img2dataset arguments that decide a shard's bytes."""
    args = img2dataset_args("", "", shard_size=shard_size, options=options, extra_cols=extra_cols)
    return {k: v for k, v in sorted(args.items()) if k not in _RUN_ONLY_ARGS}


def _rows_digest(rows: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _check_store(store: Path, shards, per_shard, settings: dict) -> None:
    """Record what the store's shards are made from; refuse to mix in shards made otherwise.

    A stored shard whose rows or output settings differ from this call's would have to be
    downloaded again, losing every image that went offline since the first download: that is the
    user's decision, so this stops with the two ways forward instead.
    """
    path = store / STORE_RECORD
    digests = {s: _rows_digest(per_shard[s]) for s in shards}
    record = json.loads(path.read_text()) if path.exists() else {"settings": settings, "shards": {}}
    kept = [s for s in shards if _finished(store, s)]
    # an option left unset (or recorded before modeflow passed it) is img2dataset's default
    before, now = ({**_IMG2DATASET_DEFAULTS, **s} for s in (record["settings"], settings))
    changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    stale = [s for s in kept if changed or record["shards"].get(s) != digests[s]]
    if stale:
        what = (f"download settings {changed} (were {[before.get(k) for k in changed]}, "
                f"now {[now.get(k) for k in changed]})" if changed
                else "rows (the pool table or download.shard_size changed)")
        raise InputDataError(
            f"{store}: shard(s) {stale[0]}..{stale[-1]} were downloaded with other {what}. Downloading "
            "them again would lose every image that has gone offline since. To keep them, restore the "
            f"previous settings; to download again, delete {store} and rerun."
        )
    record = {"settings": settings, "shards": {**record["shards"], **digests}}
    write_json(path, record)


def _link_shards(store: Path, out_dir: Path, shards) -> None:
    """out_dir gets the store's shard files: hard links (no copy), or copies across filesystems."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for s in shards:
        for suffix in SUFFIXES:
            src, dst = store / f"{s}{suffix}", out_dir / f"{s}{suffix}"
            if dst.exists():
                continue
            with atomic_path(dst, suffix=suffix) as tmp:
                tmp.unlink()  # os.link makes the name itself
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)


def _prepare_staging(staging: Path, nonempty, per_shard, kwargs) -> None:
    """(Re)create staging unless it holds this exact job: same rows, shards and img2dataset options.

    A leftover of a killed run with other rows or options would otherwise mix into this one.
    """
    digest = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode())
    for s in nonempty:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, per_shard[s].schema) as writer:
            writer.write_table(per_shard[s])
        digest.update(s.encode() + sink.getvalue().to_pybytes())
    manifest = {"fingerprint": digest.hexdigest(), "shards": nonempty}
    manifest_path = staging / "manifest.json"
    if manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
        return
    shutil.rmtree(staging, ignore_errors=True)
    for i, s in enumerate(nonempty):
        write_parquet(staging / "input" / f"{i:05d}.parquet", per_shard[s])
    write_json(manifest_path, manifest)  # last: a manifest means the inputs are complete


def _staged(output: Path, local: int) -> bool:
    """Whether img2dataset finished staged shard `local` (its stats are whole json)."""
    stats = output / f"{local:05d}_stats.json"
    try:
        json.loads(stats.read_text())
        return True
    except FileNotFoundError:
        return False
    except json.JSONDecodeError:
        # Killed while img2dataset wrote it: incremental mode would take the shard as done.
        stats.unlink()
        return False


def _run_img2dataset(kwargs: dict, proxy: str | None) -> None:
    import img2dataset

    previous = signal.getsignal(signal.SIGINT)
    try:
        with _proxy_env(proxy):
            img2dataset.download(**kwargs)
    except SystemExit as exit_:
        # img2dataset's SIGINT handler calls sys.exit(0): that would read as success.
        raise KeyboardInterrupt("img2dataset interrupted") from exit_
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _proxy_env(proxy: str | None):
    """Route http through `proxy` for img2dataset's urllib (its spawned workers inherit os.environ).

    no_proxy is emptied so that no bypass rule (`*`, a matching suffix) skips the proxy.
    """
    if proxy is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in _PROXY_VARS}
    os.environ.update(http_proxy=proxy, HTTP_PROXY=proxy, no_proxy="", NO_PROXY="")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_staged(output: Path, local: int, shard: str, rows: int) -> None:
    """Every input row must be in the shard's parquet, failures included: nothing is lost silently."""
    stats = output / f"{local:05d}_stats.json"
    if not stats.exists():
        raise RuntimeError(f"img2dataset did not finish shard {shard} (its staged shard {local:05d}); "
                           "see its output above. Rerun to resume.")
    parquet = output / f"{local:05d}.parquet"
    recorded = pq.ParquetFile(parquet).metadata.num_rows if parquet.exists() else rows  # else: moved
    if recorded != rows:
        stats.unlink()  # so that a rerun downloads the shard again instead of taking it as done
        raise RuntimeError(f"shard {shard}: img2dataset recorded {recorded} of {rows} rows in {parquet}; "
                           "see its output for the samples it failed on")


def _move_shard(output: Path, local: int, out_dir: Path, shard: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in SUFFIXES:
        src, dst = output / f"{local:05d}{suffix}", out_dir / f"{shard}{suffix}"
        if not src.exists():
            if dst.exists():  # moved by a run that was killed before the shard's last file
                continue
            raise RuntimeError(f"shard {shard}: {src} is missing from staging")
        if suffix == ".tar":
            write_sorted_tar(src, dst)
        elif suffix == ".parquet":
            write_parquet(dst, pq.read_table(src).sort_by("key"))
        else:
            with atomic_path(dst, suffix=suffix) as tmp:  # a copy: staging may be on another filesystem
                shutil.copyfile(src, tmp)
        src.unlink()


def _write_empty_shard(out_dir: Path, shard: str, input_schema: pa.Schema) -> None:
    write_empty_tar(out_dir / f"{shard}.tar")
    # The schema img2dataset's Downloader gives a shard's parquet, so all shards concatenate.
    schema = input_schema
    for name, type_ in [("key", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
                        ("width", pa.int32()), ("height", pa.int32()), ("original_width", pa.int32()),
                        ("original_height", pa.int32()), ("exif", pa.string()), ("sha256", pa.string())]:
        schema = schema.append(pa.field(name, type_))
    write_parquet(out_dir / f"{shard}.parquet", schema.empty_table())
    now = time.time()
    write_json(out_dir / f"{shard}_stats.json", {
        "count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0,
        "duration": 0.0, "start_time": now, "end_time": now, "status_dict": {},
    })


def summarize(stats_json_paths) -> dict:
    """Totals and failure reasons over img2dataset `_stats.json` files (their status_dict counts
    every row's outcome: "success" or the error message that the shard's parquet also records).

    A shard none of whose rows downloaded (dead links, only corrupt images) is listed in
    `empty_shards`: it flows through every later stage as a 0-sample tar."""
    totals = Counter()
    reasons = Counter()
    per_shard: dict[str, dict[str, int]] = {}
    paths = list(stats_json_paths)
    for path in paths:
        stats = json.loads(Path(path).read_text())
        for key in ("count", "successes", "failed_to_download", "failed_to_resize"):
            totals[key] += stats[key]
        reasons.update({msg: n for msg, n in stats["status_dict"].items() if msg != "success"})
        shard = Path(path).name.removesuffix("_stats.json")
        per_shard[shard] = {"rows": stats["count"], "successes": stats["successes"]}
    count = totals["count"]
    return {
        "num_shards": len(paths),
        **{k: totals[k] for k in ("count", "successes", "failed_to_download", "failed_to_resize")},
        "success_rate": totals["successes"] / count if count else None,
        "failure_reasons": dict(reasons.most_common()),
        "empty_shards": sorted(s for s, n in per_shard.items() if n["successes"] == 0),
        "shards": dict(sorted(per_shard.items())),
    }


def plot_summary(summary: dict, png_path) -> None:
    """Bar charts of outcomes and of the most frequent failure reasons (for the report)."""
    with png_figure(png_path, (10, 4)) as fig:
        outcomes, reasons = fig.subplots(1, 2, width_ratios=[1, 2])
        labels = ["successes", "failed_to_download", "failed_to_resize"]
        bars = outcomes.bar(labels, [summary[k] for k in labels], color=["tab:green", "tab:red", "tab:orange"])
        outcomes.bar_label(bars)
        empty = len(summary.get("empty_shards", []))
        outcomes.set_title(f"{summary['count']} samples in {summary['num_shards']} shards"
                           + (f" ({empty} empty)" if empty else ""))
        outcomes.tick_params(axis="x", labelrotation=20)
        top = list(summary["failure_reasons"].items())[:8][::-1]
        if top:
            reasons.barh([msg[:60] for msg, _ in top], [n for _, n in top], color="tab:red")
            reasons.set_title("most frequent failure reasons")
        else:
            reasons.text(0.5, 0.5, "no failures", ha="center", va="center")
            reasons.set_axis_off()
