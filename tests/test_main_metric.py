"""Each task scored by its main metric (DataComp's tasklist.yml for its tasks, a task's own
main_metric.txt, else top-1 / mean_recall@1), through the claims' bootstrap and the summary; and the
`datacomp` evaluation task list."""

from __future__ import annotations

import numpy as np
import pytest

from modeflow.common.errors import ConfigError, InputDataError
from modeflow.config import resolve
from modeflow.ensemble.claims import BLOCK, Claim, _task_seed, evaluate_claims, resampled_headlines
from modeflow.ensemble.combine import ensemble_arms
from modeflow.ensemble.per_sample import (headline_from_hits, load_hits, mean_per_class_recall,
                                          resampled_per_class_recall, sample_hits, save_hits)
from modeflow.ensemble.summary import summary_markdown, summary_table, task_metric_notes
from modeflow.evaluate.main_metric import (DATACOMP_TASKS, MAIN_METRIC_FILE, canonical_metric, datacomp_dir_name,
                                           datacomp_task_dirs, task_main_metric)
from modeflow.evaluate.metrics import headline, metrics_from_logits
from modeflow.evaluate.tasks import load_task


# --- the table --------------------------------------------------------------------------------

def test_table_is_datacomps_tasklist():
    # mlfoundations/datacomp tasklist.yml: `main_metric: mean_per_class_recall` on vtab/caltech101,
    # fgvc_aircraft, vtab/flowers and vtab/pets; none (evaluate.py's default acc1) on cifar10,
    # imagenet1k, vtab/svhn; mean_recall@1 on the two retrieval tasks
    per_class = {k for k, (_, m) in DATACOMP_TASKS.items() if m == "mean_per_class_recall"}
    assert per_class == {"vtab/caltech101", "fgvc_aircraft", "vtab/flowers", "vtab/pets"}
    assert DATACOMP_TASKS["vtab/caltech101"] == ("Caltech-101", "mean_per_class_recall")
    assert DATACOMP_TASKS["vtab/pets"] == ("Oxford-IIIT Pet", "mean_per_class_recall")
    for key in ("cifar10", "imagenet1k", "vtab/svhn", "wilds/camelyon17"):
        assert DATACOMP_TASKS[key][1] == "acc1"
    assert DATACOMP_TASKS["retrieval/flickr30k"] == ("Flickr", "mean_recall@1")
    assert DATACOMP_TASKS["retrieval/mscoco_2014_5k_test_image_text_retrieval"][1] == "mean_recall@1"
    # aggregate_scores.py asserts 38 results with a main metric: tasklist.yml's 40 less FairFace, UTKFace
    assert len(DATACOMP_TASKS) == 38
    assert not {"fairness/fairface", "fairness/utkface"} & set(DATACOMP_TASKS)
    assert canonical_metric("acc1") == "top1"


def test_directory_names_follow_download_evalsets():
    # download_evalsets.py: dir_name = f"wds_{task.replace('/', '-')}_test", fairness/ prefix dropped
    assert datacomp_dir_name("vtab/caltech101") == "wds_vtab-caltech101_test"
    assert datacomp_dir_name("imagenet1k") == "wds_imagenet1k_test"
    assert datacomp_dir_name("fairness/geode") == "wds_geode_test"
    assert datacomp_dir_name("wilds/fmow") == "wds_wilds-fmow_test"
    assert datacomp_dir_name("retrieval/flickr30k") == "wds_flickr30k_test"
    assert len(set(datacomp_task_dirs("/r"))) == 38


# --- a task's main metric ---------------------------------------------------------------------

def _cls_task(root, name):
    task = root / name
    (task / "test").mkdir(parents=True)
    (task / "classnames.txt").write_text("cat\ndog\n")
    (task / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    (task / "test" / "0.tar").write_bytes(b"")
    return task


def _ret_task(root, name):
    task = root / name
    (task / "test").mkdir(parents=True)
    (task / "dataset_type.txt").write_text("retrieval\n")
    (task / "test" / "0.tar").write_bytes(b"")
    return task


def test_main_metric_by_name_file_and_default(tmp_path):
    assert load_task(_cls_task(tmp_path, "mine")).main_metric.name == "top1"
    assert load_task(_ret_task(tmp_path, "caps")).main_metric.name == "mean_recall@1"
    caltech = load_task(_cls_task(tmp_path, "wds_vtab-caltech101_test")).main_metric
    assert (caltech.name, caltech.source) == ("mean_per_class_recall", "DataComp vtab/caltech101")
    assert load_task(_cls_task(tmp_path, "wds_cifar10_test")).main_metric.name == "top1"
    # DataComp's acc_worst_region needs FMoW's region metadata: the default, and a note saying so
    fmow = load_task(_cls_task(tmp_path, "wds_wilds-fmow_test")).main_metric
    assert fmow.name == "top1" and "acc_worst_region" in fmow.note


def test_main_metric_file_overrides(tmp_path):
    task = _cls_task(tmp_path, "wds_vtab-pets_test")
    (task / MAIN_METRIC_FILE).write_text("acc1\n")
    metric = task_main_metric(task, "classification")
    assert metric.name == "top1" and metric.source == str(task / MAIN_METRIC_FILE)
    (task / MAIN_METRIC_FILE).write_text("mean_per_class_recall\n")
    assert load_task(task).main_metric.name == "mean_per_class_recall"


@pytest.mark.parametrize("kind, value", [("classification", "balanced_accuracy"),
                                         ("classification", "mean_recall@1"), ("retrieval", "top1")])
def test_bad_main_metric_file_names_the_file(tmp_path, kind, value):
    task = (_cls_task if kind == "classification" else _ret_task)(tmp_path, "t")
    (task / MAIN_METRIC_FILE).write_text(value + "\n")
    with pytest.raises(InputDataError, match=rf"{task / MAIN_METRIC_FILE}: main metric '{value}' is not one "
                                             rf"modeflow computes for a {kind} task"):
        load_task(task)


def test_bad_main_metric_file_stops_the_start(tmp_path):
    task = _cls_task(tmp_path, "t")
    (task / MAIN_METRIC_FILE).write_text("f1\n")
    with pytest.raises(ConfigError, match=r"evaluate.tasks: .*main_metric.txt: main metric 'f1'"):
        resolve(_shards_config(tmp_path, {"tasks": [str(task)]}))


# --- headline numbers -------------------------------------------------------------------------

def _imbalanced(rng, n_big=90, n_small=10, classes=3):
    labels = np.r_[np.zeros(n_big, int), np.ones(n_small, int), np.full(5, classes - 1)]
    logits = rng.random((len(labels), classes))
    return logits, labels


def test_headline_uses_the_main_metric():
    rng = np.random.default_rng(3)
    logits, labels = _imbalanced(rng)
    metrics = metrics_from_logits(logits, labels)
    assert headline("classification", metrics) == metrics["top1"]
    assert headline("classification", metrics, "acc1") == metrics["top1"]
    assert headline("classification", metrics, "mean_per_class_recall") == metrics["mean_per_class_recall"]
    assert metrics["top1"] != metrics["mean_per_class_recall"]


def test_hits_give_the_metrics_mean_per_class_recall(tmp_path):
    rng = np.random.default_rng(4)
    logits, labels = _imbalanced(rng)
    hits = sample_hits("classification", logits, labels)
    expect = metrics_from_logits(logits, labels)
    assert headline_from_hits(hits, "mean_per_class_recall") == expect["mean_per_class_recall"]
    assert headline_from_hits(hits) == expect["top1"] == headline_from_hits(hits, "top1")
    save_hits(tmp_path, {"t": {"A": hits}})
    back = load_hits(tmp_path, {"t": "classification"})["t"]["A"]
    assert back["labels"].dtype == np.int64 and back["labels"].tolist() == labels.tolist()
    assert headline_from_hits(back, "mean_per_class_recall") == expect["mean_per_class_recall"]
    with pytest.raises(ValueError, match="needs the per-sample labels"):
        headline_from_hits({"correct": hits["correct"]}, "mean_per_class_recall")


def test_resampled_recall_averages_the_classes_the_resample_holds():
    correct = np.array([True, False, True, True])
    labels = np.array([0, 0, 1, 2])
    idx = np.array([[0, 0, 1, 2], [1, 1, 1, 1], [3, 2, 1, 0]])
    got = resampled_per_class_recall(correct, labels, idx)
    # row 0: class 0 2/3, class 1 1 (class 2 absent); row 1: class 0 only, 0; row 2: all four samples
    assert got.tolist() == pytest.approx([(2 / 3 + 1) / 2, 0.0, (0.5 + 1 + 1) / 3])
    assert got[2] == pytest.approx(mean_per_class_recall(correct, labels))


def _constructed_task():
    """Arm A: right on the big class, wrong on the small ones (top-1 0.9, per-class recall 1/3);
    arm B: right on the small classes, half right on the big one (top-1 0.55, per-class recall 5/6)."""
    labels = np.r_[np.zeros(90, int), np.ones(5, int), np.full(5, 2)]
    a = labels == 0
    b = labels != 0
    b[:90] = np.arange(90) % 2 == 0
    return {"A": {"correct": a, "labels": labels}, "B": {"correct": b, "labels": labels}}


def test_bootstrap_of_an_imbalanced_task_uses_per_class_recall():
    hits = _constructed_task()
    assert headline_from_hits(hits["A"]) == pytest.approx(0.9) and headline_from_hits(hits["B"]) == pytest.approx(0.55)
    boot = resampled_headlines(hits, "t", ["A", "B"], 200, 0, "mean_per_class_recall")
    # the same resamples as the bootstrap draws them, scored as a test set that were the resample
    rng = np.random.default_rng(_task_seed(0, "t").spawn(1)[0])
    idx = np.concatenate([rng.integers(0, 100, size=(min(BLOCK, 200 - lo), 100)) for lo in range(0, 200, BLOCK)])
    for arm in ("A", "B"):
        expect = [mean_per_class_recall(hits[arm]["correct"][i], hits[arm]["labels"][i]) for i in idx]
        assert boot[arm] == pytest.approx(expect)
    plain = resampled_headlines(hits, "t", ["A", "B"], 200, 0)  # top-1 on the same resamples
    assert plain["A"] == pytest.approx(hits["A"]["correct"][idx].mean(axis=1))
    claim = Claim("x", "B > A", {"t": ("B",)}, {"t": ("A",)})
    [by_recall] = evaluate_claims([claim], {"t": hits}, resamples=300, seed=0,
                                  main_metrics={"t": "mean_per_class_recall"})
    [by_top1] = evaluate_claims([claim], {"t": hits}, resamples=300, seed=0)
    assert by_recall["difference"] == pytest.approx(5 / 6 - 1 / 3) and by_recall["verdict"] == "holds"
    assert by_top1["difference"] == pytest.approx(0.55 - 0.9) and by_top1["verdict"] == "reversed"


def test_arms_and_summary_use_each_tasks_main_metric():
    rng = np.random.default_rng(5)
    logits, labels = _imbalanced(rng)
    experts = [rng.random(logits.shape).astype(np.float32) for _ in range(2)]
    hits = {}
    rows = ensemble_arms("classification", experts, labels, ["00", "01"], {"mode": np.array([0.5, 0.5])},
                         hits=hits, main_metric="mean_per_class_recall")
    by_arm = {r["arm"]: r for r in rows}
    for arm, row in by_arm.items():
        assert row["main_metric"] == "mean_per_class_recall"
        assert row["headline"] == row["metrics"]["mean_per_class_recall"]
    best = max(("expert_00", "expert_01"), key=lambda a: by_arm[a]["metrics"]["mean_per_class_recall"])
    assert by_arm["oracle"]["oracle_of"] == best
    table_rows = [{"task": "pets", **r} for r in rows] + [
        {"task": "caps", "arm": r["arm"], "kind": "retrieval", "headline": 0.25, "main_metric": "mean_recall@1"}
        for r in rows]
    table = summary_table(table_rows, ["pets", "caps"])
    mode = next(r for r in table if r["arm"] == "mode")
    assert mode["average"] == pytest.approx((by_arm["mode"]["metrics"]["mean_per_class_recall"] + 0.25) / 2)
    notes = task_metric_notes(table_rows, ["pets", "caps"])
    assert notes == ["pets: mean per-class recall", "caps: mean_recall@1"]
    text = "\n".join(summary_markdown(table, ["00", "01"], metric_notes=notes))
    assert "- pets: mean per-class recall\n- caps: mean_recall@1" in text
    assert "average is over the tasks' main metrics" in text


# --- the datacomp task list -------------------------------------------------------------------

def _shards_config(tmp_path, evaluate: dict) -> dict:
    shards = tmp_path / "shards"
    shards.mkdir(exist_ok=True)
    (shards / "00000.tar").write_bytes(b"")
    return {"pool": {"source": "shards", "shards": {"path": str(shards)}}, "evaluate": evaluate}


def _datacomp_root(root, skip=()):
    root.mkdir()
    for name, key in ((datacomp_dir_name(k), k) for k in DATACOMP_TASKS):
        if key not in skip:
            (_ret_task if key.startswith(("retrieval/", "misc/")) else _cls_task)(root, name)
    return root


def test_datacomp_task_list_resolves_to_its_38_directories(tmp_path):
    root = _datacomp_root(tmp_path / "evalsets")
    s = resolve(_shards_config(tmp_path, {"tasks": "datacomp", "datacomp_root": str(root)}))
    assert list(s.tasks) == [datacomp_dir_name(k) for k in DATACOMP_TASKS]
    assert s.tasks["wds_vtab-flowers_test"] == str(root / "wds_vtab-flowers_test")
    assert load_task(s.tasks["wds_fgvc_aircraft_test"]).main_metric.name == "mean_per_class_recall"


def test_datacomp_task_list_names_every_missing_directory(tmp_path):
    skip = ("vtab/pets", "imagenet1k", "retrieval/flickr30k")
    root = _datacomp_root(tmp_path / "evalsets", skip)
    cfg = _shards_config(tmp_path, {"tasks": "datacomp", "datacomp_root": str(root)})
    with pytest.raises(ConfigError, match="3 of DataComp's 38 evaluation task directories are missing") as err:
        resolve(cfg)
    for key in skip:
        assert f"{key} ({datacomp_dir_name(key)})" in str(err.value)
    assert "cifar10" not in str(err.value)
    resolve(cfg, check_files=False)  # jobs do not read the directories again
    with pytest.raises(ConfigError) as err:  # an empty root: all 38 in one message
        resolve(_shards_config(tmp_path, {"tasks": "datacomp", "datacomp_root": str(tmp_path / "none")}))
    assert all(datacomp_dir_name(k) in str(err.value) for k in DATACOMP_TASKS)


def test_datacomp_task_list_needs_its_root(tmp_path):
    with pytest.raises(ConfigError, match="evaluate.tasks is datacomp but evaluate.datacomp_root is not set"):
        resolve(_shards_config(tmp_path, {"tasks": "datacomp"}), check_files=False)
    task = _cls_task(tmp_path, "t")
    with pytest.raises(ConfigError, match="evaluate.datacomp_root is set .* but evaluate.tasks is not datacomp"):
        resolve(_shards_config(tmp_path, {"tasks": [str(task)], "datacomp_root": str(tmp_path)}))
