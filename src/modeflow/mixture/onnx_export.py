"""ONNX export of a trained mixture: every expert's image and text tower, the routing data and the
routing text encoder, with a manifest, so that the mixture runs where PyTorch does not.

    OUT_DIR/
      experts/expert_NN/image.onnx      pixels (B, 3, S, S) float32 -> image_features (B, D), L2-normalised
      experts/expert_NN/text.onnx       tokens (B, L) int64        -> text_features (B, D), L2-normalised
      tokenizers/clip_bpe.txt.gz        the experts' CLIP BPE vocabulary (open_clip's SimpleTokenizer)
      routing/fine_centers.npy, coarse_centers.npy, fine_to_coarse.npy, params.json   the cluster model
      text_encoder/model.onnx           input_ids, attention_mask (B, T) int64 -> sentence_embedding (B, E)
      text_encoder/tokenizer/           its Hugging Face tokenizer files
      manifest.json                     every file (path, bytes, sha256, input/output names and shapes),
                                        how to preprocess and tokenise, the routing constants, the check

Routing a task (modeflow.ensemble.routing) needs the text encoder, the fine centers and the
fine->coarse map; the manifest records the formulas' constants. A text encoder that modeflow cannot
export (only sentence-transformers models are exported) gets a note in the manifest instead.

The check runs every exported file with onnxruntime on a fixed batch that differs from the batch
the export traced (another batch size, other texts: the dynamic axes are exercised) and compares
with PyTorch on L2-normalised outputs; the max abs difference of each file is in the manifest and
an export above `tolerance` fails (a wrong ONNX file is worse than none). The output directory is
written atomically.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.model import load_cluster_model
from modeflow.common.atomic import atomic_dir, json_text
from modeflow.common.errors import InputDataError, ModeflowError
from modeflow.common.names import expert_model
from modeflow.common.provenance import file_sha256
from modeflow.mixture.files import ResultsLayout, require_cluster_model

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "modeflow-onnx/1"
# Exporter, for the pinned torch 2.14: "torchscript" (torch.onnx.export(dynamo=False), the legacy
# tracer) is the default: it needs nothing beyond torch and onnx, works offline, and exports the
# demo (4 experts + MiniLM) in ~11 s against ~78 s for the dynamo path on 2 CPU cores, which keeps
# the tests cheap. Its TracerWarnings come from shape assertions inside torch's attention; the
# check below shows them harmless. "dynamo" (torch.export + onnxscript, torch's default since 2.9,
# the path the legacy one's deprecation notice points to) also works offline and gives the same
# outputs within 2e-7; it stays selectable for when the legacy tracer is gone or traces wrongly.
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
DEFAULT_OPSET = 18  # both exporters support it (dynamo's minimum); onnxruntime >= 1.14 runs it
DEFAULT_TOLERANCE = 1e-4  # max abs difference of L2-normalised float32 features (seen: ~3e-7)
CHECK_SEED = 0
CHECK_TEXTS = (  # different lengths, and more of them than the trace batch
    "a photo of a red circle",
    "handwritten digit seven",
    "x",
    "a striped texture with thin diagonal lines on a pale blue background, seen from above",
)
TRACE_TEXTS = ("a photo", "two words here")
CLIP_BPE = "tokenizers/clip_bpe.txt.gz"


class ExportCheckError(ModeflowError):
    """An exported file's onnxruntime outputs differ from PyTorch's by more than the tolerance."""


# --- the modules that are exported ------------------------------------------------------------


def _tower_modules():
    """(ImageTower, TextTower, SentenceEmbedding) nn.Module classes (torch imported lazily)."""
    import torch
    import torch.nn.functional as F

    class ImageTower(torch.nn.Module):
        """A CLIP model's L2-normalised image features, as modeflow.evaluate.features computes them."""

        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, pixels):
            return F.normalize(self.clip.encode_image(pixels), dim=-1)

    class TextTower(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, tokens):
            return F.normalize(self.clip.encode_text(tokens), dim=-1)

    class SentenceEmbedding(torch.nn.Module):
        """A SentenceTransformer's output on tokenised text: what its .encode returns."""

        def __init__(self, st):
            super().__init__()
            self.st = st

        def forward(self, input_ids, attention_mask):
            return self.st({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

    return ImageTower, TextTower, SentenceEmbedding


def _export(module, args: tuple, path: Path, *, inputs: Sequence[str], outputs: Sequence[str],
            dynamic: Mapping[str, Mapping[int, str]], exporter: str, opset: int) -> None:
    """torch.onnx.export with named inputs/outputs and dynamic axes, quietly."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(input_names=list(inputs), output_names=list(outputs), opset_version=opset)
    if exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401 - the dynamo exporter needs it
        except ImportError:
            raise ModeflowError("the dynamo ONNX exporter needs onnxscript (pip install onnxscript), "
                                "or use the torchscript exporter") from None
        shapes = tuple({axis: torch.export.Dim.AUTO for axis in dynamic[i]} if i in dynamic else None
                       for i in inputs)
        kwargs.update(dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False)
    else:
        kwargs.update(dynamo=False, dynamic_axes={k: dict(v) for k, v in dynamic.items()})
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # dynamo's progress lines
        # the legacy path's deprecation notice and the tracer's notes on torch's own shape checks
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        # not under no_grad: there torch's attention takes its fused fast path
        # (aten::_native_multi_head_attention), which the torchscript exporter cannot translate
        torch.onnx.export(module.eval(), args, str(path), **kwargs)
    with torch.no_grad():
        shape = tuple(module(*args).shape)
    _fix_output_dims(path, outputs[0], shape, dynamic.get(outputs[0], {}))


def _fix_output_dims(path: Path, output: str, shape: tuple, dynamic_axes: Mapping[int, str]) -> None:
    """Write the static sizes of an output's non-dynamic axes into the file: the tracer leaves
    names like `Divimage_features_dim_1` where the feature width is known."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external tensors stay where they are
    (value,) = [v for v in model.graph.output if v.name == output]
    dims = value.type.tensor_type.shape.dim
    changed = False
    for axis, dim in enumerate(dims):
        if axis in dynamic_axes:
            if dim.dim_param != dynamic_axes[axis]:
                dim.dim_param, changed = dynamic_axes[axis], True
        elif not dim.HasField("dim_value") and axis < len(shape):
            dim.dim_value, changed = int(shape[axis]), True
    if changed:
        onnx.save(model, str(path))


# --- manifest entries -------------------------------------------------------------------------


def _onnx_io(path: Path) -> dict:
    """Input and output names, shapes (a str for a dynamic axis) and element types of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
            out.append({"name": v.name, "shape": shape, "dtype": dtype})
        return out

    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output),
            "opset": opsets.get("ai.onnx")}


def _file_entries(root: Path, checks: Mapping[str, float]) -> list[dict]:
    """One entry per file under root (manifest.json aside), sorted by path."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(root).as_posix()
        entry = {"path": rel, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.suffix == ".onnx":
            entry.update(_onnx_io(path))
            if rel in checks:
                entry["max_abs_diff"] = checks[rel]
        elif path.suffix == ".npy":
            arr = np.load(path, mmap_mode="r")
            entry.update(shape=list(arr.shape), dtype=arr.dtype.name)
        entries.append(entry)
    return entries


# --- the check --------------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _max_abs_diff(path: Path, feeds: Mapping[str, np.ndarray], reference: np.ndarray) -> float:
    """onnxruntime's output on `feeds` vs PyTorch's `reference`, both L2-normalised per row."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(feeds))[0]
    if got.shape != reference.shape:
        raise ExportCheckError(f"{path.name}: onnxruntime gives shape {got.shape}, PyTorch {reference.shape}")
    return float(np.abs(_unit_rows(got) - _unit_rows(reference)).max())


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModeflowError("the export check needs onnxruntime (pip install onnxruntime); "
                            "or export without it (check=False, --no-check)") from None


# --- experts ----------------------------------------------------------------------------------


def _architecture(layout: ResultsLayout, model: str) -> str:
    path = layout.run_meta(model)
    try:
        arch = json.loads(path.read_text()).get("model")
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read {path}: {exc}") from None
    if not isinstance(arch, str):
        raise InputDataError(f"{path}: no 'model' entry naming the expert's open_clip architecture")
    return arch


def _clip_tokenizer_entry(tokenizer, out: Path) -> dict:
    """How the experts' text is tokenised; the CLIP BPE vocabulary is copied once into out."""
    entry = {"kind": "open_clip", "class": type(tokenizer).__name__,
             "context_length": int(getattr(tokenizer, "context_length", 0))}
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    if isinstance(tokenizer, SimpleTokenizer):
        target = out / CLIP_BPE
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(default_bpe(), target)
        entry.update(bpe_vocab=CLIP_BPE, sot_token_id=int(tokenizer.sot_token_id),
                     eot_token_id=int(tokenizer.eot_token_id), pad_token_id=0,
                     note="open_clip's SimpleTokenizer: clean (ftfy, whitespace) and lower-case, BPE, "
                          "[sot] + tokens + [eot], cut to context_length (eot kept last), zero padding")
    return entry


def _export_expert(layout: ResultsLayout, model: str, out: Path, *, exporter: str, opset: int,
                   check: bool) -> tuple[dict, dict[str, float]]:
    """(manifest entry, {file: max abs diff}) of one expert's two towers."""
    import torch

    from modeflow.train.checkpoints import load_clip

    arch = _architecture(layout, model)
    clip, _, tokenizer = load_clip(arch, layout.checkpoint(model))  # names a missing/corrupt file
    ImageTower, TextTower, _ = _tower_modules()
    cfg = dict(getattr(clip.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(clip.visual, "image_size", 224))
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    gen = torch.Generator().manual_seed(CHECK_SEED)
    trace_px = torch.randn(2, 3, *size, generator=gen)
    check_px = torch.randn(3, 3, *size, generator=gen)
    rel = f"experts/{model}"
    image, text = out / rel / "image.onnx", out / rel / "text.onnx"
    _export(ImageTower(clip), (trace_px,), image, inputs=["pixels"], outputs=["image_features"],
            dynamic={"pixels": {0: "batch"}, "image_features": {0: "batch"}}, exporter=exporter, opset=opset)
    _export(TextTower(clip), (tokenizer(list(TRACE_TEXTS)),), text, inputs=["tokens"],
            outputs=["text_features"], dynamic={"tokens": {0: "batch"}, "text_features": {0: "batch"}},
            exporter=exporter, opset=opset)
    diffs = {}
    if check:
        tokens = tokenizer(list(CHECK_TEXTS))
        with torch.no_grad():
            ref_img = ImageTower(clip).eval()(check_px).numpy()
            ref_txt = TextTower(clip).eval()(tokens).numpy()
        diffs[f"{rel}/image.onnx"] = _max_abs_diff(image, {"pixels": check_px.numpy()}, ref_img)
        diffs[f"{rel}/text.onnx"] = _max_abs_diff(text, {"tokens": tokens.numpy()}, ref_txt)
    entry = {
        "name": model, "architecture": arch,
        "checkpoint": layout.checkpoint(model).relative_to(layout.root).as_posix(),
        "checkpoint_sha256": file_sha256(layout.checkpoint(model)),
        "image": f"{rel}/image.onnx", "text": f"{rel}/text.onnx",
        "embed_dim": _embed_dim(clip),
        "logit_scale": float(clip.logit_scale.exp().item()),
        "preprocess": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "tokenizer": _clip_tokenizer_entry(tokenizer, out),
    }
    return entry, diffs


def _embed_dim(clip) -> int:
    """The CLIP model's joint embedding width (its text projection's output)."""
    proj = getattr(clip, "text_projection", None)
    if proj is not None and hasattr(proj, "shape"):
        return int(proj.shape[-1])
    return int(getattr(clip, "embed_dim", 0) or getattr(clip.visual, "output_dim", 0))


# --- routing data and the routing text encoder ------------------------------------------------


def _routing_entry(layout: ResultsLayout, out: Path) -> dict:
    from modeflow.ensemble import routing

    cluster = load_cluster_model(layout.cluster_dir)
    files = {}
    for key, src in layout.cluster_files.items():
        target = out / "routing" / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        files[key] = f"routing/{src.name}"
    return {
        **files, "num_experts": cluster.num_experts, "num_fine": cluster.num_fine,
        "dim": int(cluster.fine_centers.shape[1]),
        "experts": [expert_model(i) for i in range(cluster.num_experts)],
        "distance": "L2 from each L2-normalised class embedding (mean over templates, renormalised) "
                    "to the fine centers as stored; its nearest fine center l votes for expert "
                    "fine_to_coarse[l]",
        "code": {"scale": routing.CODE_SCALE, "temperature": routing.CODE_TEMPERATURE,
                 "too_many_classes": routing.TOO_MANY_CLASSES, "few_classes": routing.FEW_CLASSES,
                 "formula": "alpha = scale*log10(max(10, C - too_many_classes)); beta = exp(0.5 - sqrt(C)) "
                            "if C < few_classes else 0; s_e = sum over classes routed to e of "
                            "exp((beta - d)*alpha); w = softmax(s / temperature)"},
        "paper": {"lambda": routing.PAPER_LAMBDA,
                  "formula": "lam = lambda / ln C if C > too_many_classes; A = exp(-d^2 / lam), "
                             "times exp(0.5 - sqrt(C)) if C < few_classes; w = softmax(sum of A per expert)"},
        "source": "modeflow.ensemble.routing",
    }


def _export_text_encoder(options: Mapping, out: Path, *, exporter: str, opset: int,
                         check: bool) -> tuple[dict, dict[str, float]]:
    """The routing encoder as ONNX (sentence-transformers only), or a note saying why not."""
    entry = {"options": dict(options)}
    if options["encoder"] != "sentence_transformers":
        entry.update(exported=False, note=f"not exported: modeflow exports sentence_transformers routing "
                     f"encoders only, this run's is {options['encoder']!r}; embed class names with "
                     f"modeflow.embed.encoders.load_text_encoder and these options")
        return entry, {}
    import torch

    from modeflow.ensemble.routing_encoder import load_routing_encoder

    encoder = load_routing_encoder(options, device="cpu")
    st = encoder.model
    max_length = int(st.max_seq_length)
    _, _, SentenceEmbedding = _tower_modules()

    def tokenize(texts):
        return st.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                            return_tensors="np")

    trace = tokenize(TRACE_TEXTS)
    path = out / "text_encoder" / "model.onnx"
    names = ["input_ids", "attention_mask"]
    try:
        _export(SentenceEmbedding(st), tuple(torch.from_numpy(trace[n]) for n in names), path,
                inputs=names, outputs=["sentence_embedding"],
                dynamic={"input_ids": {0: "batch", 1: "sequence"},
                         "attention_mask": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}},
                exporter=exporter, opset=opset)
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes the manifest's note
        shutil.rmtree(path.parent, ignore_errors=True)
        log.warning("routing text encoder not exported: %s: %s", type(exc).__name__, exc)
        entry.update(exported=False, note=f"not exported: torch.onnx.export ({exporter}) failed: "
                                          f"{type(exc).__name__}: {exc}"[:2000])
        return entry, {}
    st.tokenizer.save_pretrained(str(path.parent / "tokenizer"))
    diffs = {}
    if check:
        feeds = {n: tokenize(CHECK_TEXTS)[n].astype(np.int64) for n in names}
        diffs["text_encoder/model.onnx"] = _max_abs_diff(path, feeds, encoder.encode(list(CHECK_TEXTS), 64))
    entry.update(exported=True, file="text_encoder/model.onnx", tokenizer="text_encoder/tokenizer",
                 max_length=max_length, dim=int(encoder.dim),
                 note="tokenise with the Hugging Face tokenizer in `tokenizer` (padding, truncation to "
                      "max_length), feed input_ids and attention_mask; the output is what "
                      "SentenceTransformer.encode returns; routing L2-normalises it")
    return entry, diffs


# --- the export -------------------------------------------------------------------------------


def _versions() -> dict:
    import onnx
    import torch

    out = {"torch": torch.__version__, "onnx": onnx.__version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    return out


def _select_experts(num_experts: int, experts: Sequence[int] | None) -> list[int]:
    if experts is None:
        return list(range(num_experts))
    bad = [i for i in experts if not 0 <= int(i) < num_experts]
    if bad or not experts:
        raise InputDataError(f"experts: {list(experts)} is not a non-empty list of expert indices in "
                             f"0..{num_experts - 1} (the cluster model has {num_experts} experts)")
    return sorted({int(i) for i in experts})


def export_onnx(results_dir: str | Path, out_dir: str | Path, *, opset: int = DEFAULT_OPSET,
                check: bool = True, exporter: str = DEFAULT_EXPORTER,
                experts: Sequence[int] | None = None, encoder_options: Mapping | None = None,
                tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Export a finished results directory's mixture to out_dir (written atomically); returns the
    manifest (also out_dir/manifest.json).

    `experts` restricts to some expert indices; `encoder_options` overrides the routing encoder's
    options (default: the ones the routing step saved in ensemble/routing/encoder.json). With
    `check`, every file is run with onnxruntime and compared with PyTorch; a max abs difference above
    `tolerance` raises ExportCheckError and writes nothing."""
    if exporter not in EXPORTERS:
        raise ModeflowError(f"unknown ONNX exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    layout = ResultsLayout(Path(results_dir))
    require_cluster_model(layout)
    num_experts = load_cluster_model(layout.cluster_dir).num_experts
    chosen = [expert_model(i) for i in _select_experts(num_experts, experts)]
    for model in chosen:  # all inputs named before any slow export starts
        for path in (layout.checkpoint(model), layout.run_meta(model)):
            if not path.is_file():
                raise InputDataError(f"{layout.root} holds no trained {model}: {path} is missing "
                                     "(run the pipeline's train stage first)")
    from modeflow.ensemble.routing_encoder import encoder_options as picked, read_encoder_options

    # the routing step's record, or the given options (their encoder-picking keys, all of them)
    encoder_options = read_encoder_options(layout.routing_dir) if encoder_options is None else picked(encoder_options)
    if check:
        _require_onnxruntime()
    diffs: dict[str, float] = {}
    with atomic_dir(out_dir) as tmp:
        expert_entries = []
        for model in chosen:
            log.info("exporting %s", model)
            entry, d = _export_expert(layout, model, tmp, exporter=exporter, opset=opset, check=check)
            expert_entries.append(entry)
            diffs.update(d)
        routing = _routing_entry(layout, tmp)
        log.info("exporting the routing text encoder")
        text_encoder, d = _export_text_encoder(encoder_options, tmp, exporter=exporter, opset=opset, check=check)
        diffs.update(d)
        bad = {k: v for k, v in diffs.items() if not v <= tolerance}
        if bad:
            raise ExportCheckError("exported ONNX files differ from PyTorch by more than "
                                   f"{tolerance:g}: " + ", ".join(f"{k} ({v:.3g})" for k, v in sorted(bad.items())))
        manifest = {
            "format": FORMAT, "results_dir": str(layout.root.resolve()), "exporter": exporter, "opset": opset,
            "versions": _versions(), "experts": expert_entries, "routing": routing,
            "text_encoder": text_encoder,
            "check": ({"ran": True, "tolerance": tolerance, "max_abs_diff": max(diffs.values(), default=0.0),
                       "compared": "onnxruntime (CPU) vs PyTorch, L2-normalised outputs, on a fixed batch "
                                   f"other than the traced one: images N(0,1) of seed {CHECK_SEED}, "
                                   f"texts {list(CHECK_TEXTS)}",
                       "per_file": dict(sorted(diffs.items()))}
                      if check else {"ran": False}),
        }
        manifest["files"] = _file_entries(tmp, diffs)
        (tmp / MANIFEST).write_text(json_text(manifest))
    return manifest


# --- command line -----------------------------------------------------------------------------


def add_parser(subparsers) -> None:
    """Register `modeflow export-onnx RESULTS OUT_DIR` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "export-onnx",
        help="export the trained mixture (experts' image and text towers, routing data, routing "
             "text encoder) as ONNX files with a manifest, checked against PyTorch with onnxruntime")
    p.add_argument("results", help="a finished run's results directory (the config's results_dir)")
    p.add_argument("out_dir", help="output directory (written atomically; replaced if it exists)")
    p.add_argument("--experts", default=None,
                   help="experts to export, by index or name separated by commas (0,2 or expert_00; "
                        "default: all)")
    p.add_argument("--config", default=None,
                   help="the run's config, to name the routing text encoder when the results do not "
                        "record it (results/ensemble/routing/encoder.json)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help=f"torch.onnx exporter (default: {DEFAULT_EXPORTER}; dynamo needs onnxscript)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"max abs difference allowed vs PyTorch (default: {DEFAULT_TOLERANCE:g})")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch check")
    p.set_defaults(func=run_cli)


def run_cli(args) -> None:
    """`modeflow export-onnx`: export, then print one line per file and the check's result."""
    from modeflow.mixture.arguments import expert_list
    from modeflow.mixture.load import run_config_embed

    experts = expert_list(args.experts)
    options = run_config_embed(args.config) if args.config else None
    manifest = export_onnx(args.results, args.out_dir, opset=args.opset, check=not args.no_check,
                           exporter=args.exporter, experts=experts, encoder_options=options,
                           tolerance=args.tolerance)
    total = sum(f["bytes"] for f in manifest["files"])
    for f in manifest["files"]:
        diff = f" max|diff| {f['max_abs_diff']:.2e}" if "max_abs_diff" in f else ""
        print(f"{f['path']}  {f['bytes']} B{diff}")
    check = manifest["check"]
    verdict = (f"check: max abs difference {check['max_abs_diff']:.2e} <= {check['tolerance']:g}"
               if check["ran"] else "check: skipped")
    note = "" if manifest["text_encoder"]["exported"] else f"\ntext encoder: {manifest['text_encoder']['note']}"
    print(f"{args.out_dir}: {len(manifest['files'])} files, {total} bytes, manifest {MANIFEST}; {verdict}{note}")
