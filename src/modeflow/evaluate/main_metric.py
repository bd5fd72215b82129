"""Each evaluation task's main metric (the one number a summary shows and averages), and DataComp's
evaluation task list.

A task's main metric, first found wins:
  1. `<task>/main_metric.txt` (one line: top1 / acc1, mean_per_class_recall or mean_recall@1);
  2. DataComp's, when the task directory is named as DataComp's download_evalsets.py names its
     DataComp task (`wds_vtab-caltech101_test` is `vtab/caltech101`, see `datacomp_dir_name`);
  3. top-1 for classification, mean_recall@1 for retrieval.

DATACOMP_TASKS is DataComp's `tasklist.yml` (mlfoundations/datacomp) as data: every task whose
results enter DataComp's average, each with its `main_metric` (acc1 where tasklist.yml names
none, as DataComp's evaluate.py defaults: `metrics.get(task.get("main_metric", "acc1"))`).
FairFace and UTKFace are left out: their results carry no acc1, so DataComp's aggregate_scores.py
drops them and averages the other 38.

modeflow computes three of DataComp's metrics (COMPUTED). Five DataComp tasks have a main metric
that needs more than a wds task's labels (WILDS and fairness group metadata, WinoGAViL's
Jaccard score): they are scored by their kind's default and `main_metric_note` says so, so a
summary never presents such a number as DataComp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeflow.common.errors import InputDataError

MAIN_METRIC_FILE = "main_metric.txt"
TOP1, MEAN_PER_CLASS_RECALL, MEAN_RECALL_AT_1 = "top1", "mean_per_class_recall", "mean_recall@1"
ALIASES = {"acc1": TOP1}  # DataComp's name for top-1
COMPUTED = {"classification": (TOP1, MEAN_PER_CLASS_RECALL), "retrieval": (MEAN_RECALL_AT_1,)}
DEFAULT = {"classification": TOP1, "retrieval": MEAN_RECALL_AT_1}
LABELS = {TOP1: "top-1 accuracy", MEAN_PER_CLASS_RECALL: "mean per-class recall",
          MEAN_RECALL_AT_1: "mean_recall@1"}

# DataComp's tasklist.yml (mlfoundations/datacomp): task key -> (display name, main_metric), in its
# order; "acc1" where the file names no main_metric.
DATACOMP_TASKS: dict[str, tuple[str, str]] = {
    "vtab/caltech101": ("Caltech-101", "mean_per_class_recall"),
    "cifar10": ("CIFAR-10", "acc1"),
    "vtab/cifar100": ("CIFAR-100", "acc1"),
    "vtab/clevr_count_all": ("CLEVR Counts", "acc1"),
    "vtab/clevr_closest_object_distance": ("CLEVR Distance", "acc1"),
    "country211": ("Country211", "acc1"),
    "vtab/dtd": ("Describable Textures", "acc1"),
    "vtab/eurosat": ("EuroSAT", "acc1"),
    "fgvc_aircraft": ("FGVC Aircraft", "mean_per_class_recall"),
    "food101": ("Food-101", "acc1"),
    "gtsrb": ("GTSRB", "acc1"),
    "imagenet1k": ("ImageNet 1k", "acc1"),
    "imagenet_sketch": ("ImageNet Sketch", "acc1"),
    "imagenetv2": ("ImageNet v2", "acc1"),
    "imagenet-a": ("ImageNet-A", "acc1"),
    "imagenet-o": ("ImageNet-O", "acc1"),
    "imagenet-r": ("ImageNet-R", "acc1"),
    "vtab/kitti_closest_vehicle_distance": ("KITTI Vehicle Distance", "acc1"),
    "mnist": ("MNIST", "acc1"),
    "objectnet": ("ObjectNet", "acc1"),
    "vtab/flowers": ("Oxford Flowers-102", "mean_per_class_recall"),
    "vtab/pets": ("Oxford-IIIT Pet", "mean_per_class_recall"),
    "voc2007": ("Pascal VOC 2007", "acc1"),
    "vtab/pcam": ("PatchCamelyon", "acc1"),
    "renderedsst2": ("Rendered SST2", "acc1"),
    "vtab/resisc45": ("RESISC45", "acc1"),
    "cars": ("Stanford Cars", "acc1"),
    "stl10": ("STL-10", "acc1"),
    "sun397": ("SUN397", "acc1"),
    "vtab/svhn": ("SVHN", "acc1"),
    "retrieval/flickr30k": ("Flickr", "mean_recall@1"),
    "retrieval/mscoco_2014_5k_test_image_text_retrieval": ("MSCOCO", "mean_recall@1"),
    "misc/winogavil": ("WinoGAViL", "jaccard_score_10-12"),
    "wilds/iwildcam": ("iWildCam", "F1-macro_all"),
    "wilds/camelyon17": ("Camelyon17", "acc1"),
    "wilds/fmow": ("FMoW", "acc_worst_region"),
    "fairness/dollar_street": ("Dollar Street", "acc_top5_wg"),
    "fairness/geode": ("GeoDE", "acc_wg"),
}


@dataclass(frozen=True)
class MainMetric:
    """`name`: the metric modeflow scores the task by (a key of its metrics dicts); `source`: where
    it came from (the main_metric.txt path, "DataComp <key>" or "default"); `note`: why it is not
    DataComp's, when DataComp's cannot be computed."""

    name: str
    source: str = "default"
    note: str = ""


def canonical_metric(name: str) -> str:
    """acc1 -> top1; other names unchanged."""
    return ALIASES.get(name, name)


def datacomp_dir_name(key: str) -> str:
    """The directory DataComp's download_evalsets.py writes a task to: `wds_<key, / as ->_test`,
    its `fairness/` prefix dropped. Its retrieval/ and misc/ tasks it downloads from Hugging Face
    instead; their clip_benchmark wds directories are named by the same rule, prefix dropped
    (`wds_flickr30k_test`)."""
    for prefix in ("fairness/", "retrieval/", "misc/"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return f"wds_{key.replace('/', '-')}_test"


DATACOMP_DIRS = {datacomp_dir_name(key): key for key in DATACOMP_TASKS}


def datacomp_task_dirs(root: str | Path) -> dict[str, str]:
    """{directory name: path under root} of DataComp's 38 tasks, in tasklist.yml's order."""
    return {name: str(Path(root) / name) for name in DATACOMP_DIRS}


def missing_datacomp_tasks(root: str | Path) -> list[str]:
    """The DataComp tasks (as 'key (directory)') whose directory is not under root."""
    return [f"{key} ({name})" for name, key in DATACOMP_DIRS.items() if not (Path(root) / name).is_dir()]


def _declared(task_dir: Path, kind: str) -> MainMetric | None:
    path = task_dir / MAIN_METRIC_FILE
    if not path.exists():
        return None
    raw = path.read_text(encoding="utf-8").strip()
    name = canonical_metric(raw)
    if name not in COMPUTED[kind]:
        allowed = " / ".join(["top1 / acc1" if m == TOP1 else m for m in COMPUTED[kind]])
        raise InputDataError(f"{path}: main metric {raw!r} is not one modeflow computes for a {kind} "
                             f"task; expected {allowed}")
    return MainMetric(name, str(path))


def task_main_metric(task_dir: str | Path, kind: str) -> MainMetric:
    """The task's main metric (module docstring's order); a main_metric.txt naming a metric modeflow
    does not compute for the task's kind is an error naming the file."""
    task_dir = Path(task_dir)
    declared = _declared(task_dir, kind)
    if declared is not None:
        return declared
    key = DATACOMP_DIRS.get(task_dir.name)
    if key is None:
        return MainMetric(DEFAULT[kind])
    wanted = canonical_metric(DATACOMP_TASKS[key][1])
    if wanted in COMPUTED[kind]:
        return MainMetric(wanted, f"DataComp {key}")
    return MainMetric(DEFAULT[kind], f"DataComp {key}",
                      note=f"DataComp's main metric for {key} is {wanted}, which modeflow does not compute; "
                           f"scored by {DEFAULT[kind]}")


def main_metric_note(task: str, metric: MainMetric | str) -> str:
    """One line saying how a task is scored (for a summary's header)."""
    metric = metric if isinstance(metric, MainMetric) else MainMetric(metric)
    line = f"{task}: {LABELS.get(metric.name, metric.name)}"
    if metric.source != "default":
        line += f" ({metric.source})"
    return line + (f"; {metric.note}" if metric.note else "")
