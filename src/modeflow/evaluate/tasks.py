"""Evaluation tasks in clip_benchmark's `wds/` layout (see modeflow.demo.wds for the writer).

    <task>/test/{0..n-1}.tar   samples with an image (`png`, `jpg`, `jpeg` or `webp`) and
                               `cls` (class index, classification) or `txt` (retrieval captions)
    <task>/test/nshards.txt    number of tars (optional: without it every *.tar in test/ is read)
    <task>/classnames.txt, zeroshot_classification_templates.txt   (classification)
    <task>/dataset_type.txt    "classification" or "retrieval" (absent: classification when
                               classnames.txt exists, else retrieval)
    <task>/main_metric.txt     the metric the task is scored by (optional; modeflow.evaluate.main_metric)

Templates hold `{c}` where the class name goes (clip_benchmark's convention). A retrieval sample's
`txt` may hold several captions, one a line; each line is one text query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from modeflow.common.errors import InputDataError
from modeflow.evaluate.main_metric import MainMetric, task_main_metric
from modeflow.wds.reader import IMAGE_EXTENSIONS

KINDS = ("classification", "retrieval")
CLASSNAMES = "classnames.txt"
TEMPLATES = "zeroshot_classification_templates.txt"
DATASET_TYPE = "dataset_type.txt"
SPLIT = "test"


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "classification" | "retrieval"
    classnames: list[str]
    templates: list[str]
    shards: list[str]
    path: Path
    main_metric: MainMetric | None = None  # None: the kind's default (modeflow.evaluate.main_metric)


@dataclass(frozen=True)
class TaskSample:
    key: str
    shard: str
    image: object  # whatever `preprocess` returned (a CHW tensor for open_clip's transforms)
    target: int | list[str]  # class index (classification) or captions (retrieval)


def fill_template(template: str, classname: str) -> str:
    # replace, not str.format: a template with other braces must not break
    return template.replace("{c}", classname)


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _task_kind(task_dir: Path) -> str:
    type_file = task_dir / DATASET_TYPE
    if not type_file.exists():
        return "classification" if (task_dir / CLASSNAMES).exists() else "retrieval"
    kind = type_file.read_text().strip()
    if kind not in KINDS:
        raise InputDataError(f"{type_file}: unknown dataset type {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _shards(task_dir: Path) -> list[str]:
    split = task_dir / SPLIT
    count_file = split / "nshards.txt"
    if count_file.exists():
        try:
            count = int(count_file.read_text().strip())
        except ValueError:
            raise InputDataError(f"{count_file}: expected an integer") from None
        tars = [split / f"{i}.tar" for i in range(count)]
        missing = [str(t) for t in tars if not t.is_file()]
        if missing:
            raise InputDataError(f"{count_file} says {count} shards but {', '.join(missing)} missing")
    else:
        # numeric order when names are numbers (2.tar before 10.tar)
        tars = sorted(split.glob("*.tar"), key=lambda p: (len(p.stem), p.stem))
    if not tars:
        raise InputDataError(f"task {task_dir}: no .tar shards in {split}")
    return [str(t) for t in tars]


def load_task(task_dir: str | Path) -> Task:
    """Read a task's description files and list its shards (nothing is decoded yet)."""
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise InputDataError(f"task directory {task_dir} does not exist")
    kind = _task_kind(task_dir)
    classnames: list[str] = []
    templates: list[str] = []
    if kind == "classification":
        for name in (CLASSNAMES, TEMPLATES):
            if not (task_dir / name).is_file():
                raise InputDataError(f"classification task {task_dir} has no {name}")
        classnames = _read_lines(task_dir / CLASSNAMES)
        templates = _read_lines(task_dir / TEMPLATES)
        if not classnames:
            raise InputDataError(f"{task_dir / CLASSNAMES} is empty (task {task_dir})")
        if not templates:
            raise InputDataError(f"{task_dir / TEMPLATES} is empty (task {task_dir})")
        no_slot = [t for t in templates if "{c}" not in t]
        if no_slot:
            raise InputDataError(f"{task_dir / TEMPLATES}: template {no_slot[0]!r} has no {{c}} placeholder")
    return Task(task_dir.name, kind, classnames, templates, _shards(task_dir), task_dir,
                task_main_metric(task_dir, kind))


def _image_of(sample: dict, where: str):
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return sample[ext]
    raise InputDataError(f"{where}: no image ({'/'.join(IMAGE_EXTENSIONS)})")


def _target_of(task: Task, sample: dict, where: str) -> int | list[str]:
    if task.kind == "classification":
        if "cls" not in sample:
            raise InputDataError(f"{where}: no .cls label")
        try:
            label = int(sample["cls"])
        except (TypeError, ValueError):
            raise InputDataError(f"{where}: label {sample['cls']!r} is not an integer") from None
        if not 0 <= label < len(task.classnames):
            raise InputDataError(f"{where}: label {label} is outside [0, {len(task.classnames)}) "
                                 f"({len(task.classnames)} classes in {task.path / CLASSNAMES})")
        return label
    if "txt" not in sample:
        raise InputDataError(f"{where}: no .txt caption")
    captions = [line.strip() for line in str(sample["txt"]).splitlines() if line.strip()]
    if not captions:
        raise InputDataError(f"{where}: empty caption")
    return captions


def iter_task_samples(task: Task, preprocess: Callable | None = None) -> Iterator[TaskSample]:
    """Samples in shard order, images decoded to PIL (RGB) and passed through `preprocess`."""
    import webdataset as wds

    dataset = wds.WebDataset(task.shards, shardshuffle=False).decode("pilrgb")
    for sample in dataset:
        key, shard = sample["__key__"], sample.get("__url__", "?")
        where = f"sample {key} in {shard}"
        image = _image_of(sample, where)
        target = _target_of(task, sample, where)
        yield TaskSample(key, str(shard), preprocess(image) if preprocess else image, target)


def task_captions(task: Task) -> list[str]:
    """A retrieval task's captions in evaluation order (images are not decoded)."""
    import webdataset as wds

    captions: list[str] = []
    for sample in wds.WebDataset(task.shards, shardshuffle=False).decode():
        where = f"sample {sample['__key__']} in {sample.get('__url__', '?')}"
        captions.extend(_target_of(task, sample, where))
    return captions
