"""Held-out tasks in clip_benchmark's `wds/` layout, written byte-for-byte reproducibly.

Layout (clip_benchmark.datasets.builder.build_wds_dataset):
    <task>/test/{0..n-1}.tar   samples `s%07d.png` + `.cls` (class index) or `.txt` (caption)
    <task>/test/nshards.txt
    <task>/classnames.txt, zeroshot_classification_templates.txt   (classification)
    <task>/dataset_type.txt                                          ("retrieval" for retrieval)
Tars are written with tarfile and fixed member metadata (mtime 0, root owner), since
webdataset's TarWriter stamps the current time.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterable

SAMPLES_PER_SHARD = 1000


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shards(split_dir: Path, samples: list[dict[str, bytes]],
                 per_shard: int = SAMPLES_PER_SHARD) -> int:
    """samples: {extension: bytes} per sample, keyed s0000000, s0000001, … in order.
    Writes {0..n-1}.tar and nshards.txt; returns the number of shards."""
    split_dir.mkdir(parents=True, exist_ok=True)
    nshards = max(1, -(-len(samples) // per_shard))
    for shard in range(nshards):
        with tarfile.open(split_dir / f"{shard}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for index in range(shard * per_shard, min(len(samples), (shard + 1) * per_shard)):
                for ext, data in samples[index].items():
                    _add(tar, f"s{index:07d}.{ext}", data)
    (split_dir / "nshards.txt").write_text(f"{nshards}\n")
    return nshards


def _lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def write_classification_task(task_dir: Path, images: list[bytes], labels: list[int],
                              classnames: list[str], templates: list[str]) -> dict:
    samples = [{"png": png, "cls": str(label).encode()} for png, label in zip(images, labels)]
    nshards = write_shards(task_dir / "test", samples)
    _lines(task_dir / "classnames.txt", classnames)
    _lines(task_dir / "zeroshot_classification_templates.txt", templates)
    _lines(task_dir / "dataset_type.txt", ["classification"])
    return {"type": "classification", "samples": len(samples), "classes": len(classnames),
            "shards": nshards}


def write_retrieval_task(task_dir: Path, images: list[bytes], captions: list[str]) -> dict:
    samples = [{"png": png, "txt": caption.encode()} for png, caption in zip(images, captions)]
    nshards = write_shards(task_dir / "test", samples)
    _lines(task_dir / "dataset_type.txt", ["retrieval"])
    return {"type": "retrieval", "samples": len(samples), "shards": nshards}
