"""modeflow.evaluate.tasks and modeflow.evaluate.zeroshot: task loading errors, metric hand cases, a tiny model run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from modeflow.demo.wds import write_classification_task, write_retrieval_task, write_shards
from modeflow.common.errors import ModeflowError
from modeflow.evaluate.metrics import metrics_from_logits, retrieval_metrics
from modeflow.evaluate.zeroshot import evaluate_model
from modeflow.evaluate.tasks import iter_task_samples, load_task

CLASSES = ["red square", "blue circle", "green triangle", "black star"]
TEMPLATES = ["a {c}.", "a drawing of a {c}."]


def png(seed: int, size: int = 32) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_classification(task_dir: Path, n: int = 24, labels: list[int] | None = None) -> Path:
    labels = labels if labels is not None else [i % len(CLASSES) for i in range(n)]
    write_classification_task(task_dir, [png(i) for i in range(len(labels))], labels, CLASSES, TEMPLATES)
    return task_dir


def make_retrieval(task_dir: Path, n: int = 16) -> Path:
    write_retrieval_task(task_dir, [png(100 + i) for i in range(n)],
                         [f"a {CLASSES[i % 4]} number {i}" for i in range(n)])
    return task_dir


# --- task loading -----------------------------------------------------------------------------


def test_load_classification_and_retrieval(tmp_path):
    task = load_task(make_classification(tmp_path / "shapes", n=8))
    assert (task.name, task.kind, task.classnames, task.templates) == ("shapes", "classification",
                                                                        CLASSES, TEMPLATES)
    samples = list(iter_task_samples(task, preprocess=lambda im: im.size))
    assert [s.target for s in samples] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert samples[0].image == (32, 32) and samples[0].key == "s0000000"
    retrieval = load_task(make_retrieval(tmp_path / "ret", n=3))
    assert retrieval.kind == "retrieval"
    assert [s.target for s in iter_task_samples(retrieval)][2] == ["a green triangle number 2"]


def test_dataset_type_absent_follows_classnames(tmp_path):
    task_dir = make_classification(tmp_path / "t", n=4)
    (task_dir / "dataset_type.txt").unlink()
    assert load_task(task_dir).kind == "classification"
    ret = make_retrieval(tmp_path / "r", n=2)
    (ret / "dataset_type.txt").unlink()
    assert load_task(ret).kind == "retrieval"


@pytest.mark.parametrize("missing", ["classnames.txt", "zeroshot_classification_templates.txt"])
def test_classification_without_a_description_file(tmp_path, missing):
    task_dir = make_classification(tmp_path / "t", n=4)
    (task_dir / missing).unlink()
    (task_dir / "dataset_type.txt").write_text("classification\n")
    with pytest.raises(ModeflowError, match=rf"{task_dir}.*{missing}"):
        load_task(task_dir)


def test_empty_classnames(tmp_path):
    task_dir = make_classification(tmp_path / "t", n=4)
    (task_dir / "classnames.txt").write_text("\n")
    with pytest.raises(ModeflowError, match="classnames.txt is empty"):
        load_task(task_dir)


def test_label_out_of_range_names_sample_and_shard(tmp_path):
    task = load_task(make_classification(tmp_path / "t", labels=[0, 1, 4]))  # 4 classes: 4 is bad
    with pytest.raises(ModeflowError, match=r"s0000002 in .*0\.tar: label 4 is outside \[0, 4\)"):
        list(iter_task_samples(task))


def test_no_tars(tmp_path):
    task_dir = make_classification(tmp_path / "t", n=4)
    for tar in (task_dir / "test").glob("*"):
        tar.unlink()
    with pytest.raises(ModeflowError, match="no .tar shards"):
        load_task(task_dir)


def test_nshards_pointing_at_missing_tar(tmp_path):
    task_dir = make_classification(tmp_path / "t", n=4)
    (task_dir / "test" / "nshards.txt").write_text("2\n")
    with pytest.raises(ModeflowError, match="1.tar"):
        load_task(task_dir)


def test_multi_caption_retrieval_sample(tmp_path):
    write_shards(tmp_path / "r" / "test", [{"png": png(0), "txt": b"first caption\nsecond caption\n"}])
    (tmp_path / "r" / "dataset_type.txt").write_text("retrieval\n")
    assert next(iter_task_samples(load_task(tmp_path / "r"))).target == ["first caption", "second caption"]


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_from_logits_hand_case():
    logits = np.array([[0.9, 0.1, 0.0],   # pred 0, label 0: right
                       [0.2, 0.7, 0.1],   # pred 1, label 0: wrong
                       [0.1, 0.8, 0.1],   # pred 1, label 1: right
                       [0.0, 0.1, 0.9]])  # pred 2, label 2: right
    m = metrics_from_logits(logits, np.array([0, 0, 1, 2]))
    assert m["top1"] == pytest.approx(3 / 4)
    # class 0: 1/2, class 1: 1/1, class 2: 1/1 -> (0.5 + 1 + 1) / 3
    assert m["mean_per_class_recall"] == pytest.approx(2.5 / 3)
    assert m["num_samples"] == 4


def test_retrieval_metrics_hand_case():
    # 3 images x 4 texts; texts 0,1 describe image 0, text 2 image 1, text 3 image 2
    sim = np.array([[0.9, 0.1, 0.2, 0.0],
                    [0.3, 0.5, 0.8, 0.6],
                    [0.0, 0.4, 0.1, 0.1]])
    m = retrieval_metrics(sim, np.array([0, 0, 1, 2]))
    # text -> image (columns): t0 best image 0 ✓; t1 best image 1 (0.5) then 2 (0.4) then 0 -> rank 2;
    # t2 best image 1 ✓; t3 best image 1 (0.6), image 2 (0.1) second -> rank 1
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert m["image_retrieval_recall@5"] == pytest.approx(1.0)
    # image -> text (rows): image 0 best text 0 ✓; image 1 best text 2 ✓; image 2 best text 1 (0.4),
    # its text 3 ties text 2 at 0.1 and comes after it -> rank 2
    assert m["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert m["mean_recall@1"] == pytest.approx(0.5 * (2 / 4 + 2 / 3))
    assert (m["num_images"], m["num_texts"]) == (3, 4)


def test_retrieval_metrics_chunking_agrees():
    rng = np.random.default_rng(0)
    sim, t2i = rng.normal(size=(30, 45)), rng.integers(0, 30, 45)
    assert retrieval_metrics(sim, t2i, chunk=7) == retrieval_metrics(sim, t2i, chunk=1024)


# --- a tiny model, end to end -----------------------------------------------------------------


def test_evaluate_random_model_and_rerun_skips(tmp_path):
    tasks = [make_classification(tmp_path / "tasks" / "shapes", n=40), make_retrieval(tmp_path / "tasks" / "ret")]
    out = tmp_path / "eval"
    rows = evaluate_model("modeflow-tiny-vit", None, tasks, out, batch_size=16)
    logits, labels = np.load(out / "shapes" / "logits.npy"), np.load(out / "shapes" / "labels.npy")
    assert logits.shape == (40, 4) and logits.dtype == np.float32 and np.abs(logits).max() <= 1.0 + 1e-5
    assert labels.tolist() == [i % 4 for i in range(40)]
    sim = np.load(out / "ret" / "similarity.npy")
    assert sim.shape == (16, 16) and np.load(out / "ret" / "text_to_image.npy").tolist() == list(range(16))
    jsonl = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in jsonl] == ["shapes", "ret"]
    assert rows[0]["metrics"] == metrics_from_logits(logits, labels)
    assert "mean_recall@1" in rows[1]["metrics"]
    before = (out / "shapes" / "logits.npy").stat().st_mtime_ns
    again = evaluate_model("modeflow-tiny-vit", None, tasks, out, batch_size=16)
    assert again == rows and (out / "results.jsonl").read_text().splitlines() == jsonl
    assert (out / "shapes" / "logits.npy").stat().st_mtime_ns == before
    # a task recorded in the jsonl whose arrays are gone is evaluated again, not duplicated
    (out / "ret" / "similarity.npy").unlink()
    evaluate_model("modeflow-tiny-vit", None, tasks, out, batch_size=16)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert (out / "ret" / "similarity.npy").exists()


def test_checkpoint_of_another_architecture(tmp_path):
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    other = open_clip.create_model("modeflow-tiny-vit", embed_dim=32)  # another projection size
    ckpt = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": other.state_dict()}, ckpt)
    task = make_classification(tmp_path / "t", n=4)
    with pytest.raises(ModeflowError, match=str(ckpt)):
        evaluate_model("modeflow-tiny-vit", ckpt, [task], tmp_path / "eval")
    assert not (tmp_path / "eval" / "results.jsonl").exists()
