"""`modeflow` command: the package's steps without Snakemake, for checking and one-off use.

The pipeline itself is run with `snakemake` (see README.md); this CLI validates configs, shows the
shard plan, builds the demo pool on its own, and uses a trained mixture from a finished results
directory: `classify` and `retrieve` route through MoDE's ensemble as the pipeline does, `bundle`
gathers a DataComp-style submission, `export-onnx` writes the experts and routing data as ONNX.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys

from modeflow.common.errors import ModeflowError


def _check_config(args: argparse.Namespace) -> None:
    from .config import resolve
    from .config.files import read_config_file

    raw = read_config_file(args.config)  # its errors name the file already
    try:
        settings = resolve(raw)
    except ModeflowError as exc:
        raise type(exc)(f"{args.config}: {exc}") from None
    print(f"{args.config}: valid; source={settings.source}, {len(settings.plan.shards)} shards")
    if args.show:
        print(json.dumps(settings.config, indent=2))


def _demo_pool(args: argparse.Namespace) -> None:
    from .demo import generate_demo_pool

    summary = generate_demo_pool(
        args.out,
        seed=args.seed,
        num_samples=args.samples,
        domains=args.domains,
        image_size=args.image_size,
        noise_fraction=args.noise_fraction,
        eval_images_per_class=args.eval_images_per_class,
        retrieval_pairs=args.retrieval_pairs,
    )
    print(json.dumps(summary, indent=2))
    if args.shards:
        from .demo.shards import write_demo_shards

        shards = write_demo_shards(args.out, shard_size=args.shard_size, image_size=args.shard_image_size)
        # on stderr, so that stdout stays demo.json's summary
        print(f"{shards['path']}: {shards['shards']} img2dataset webdataset shard(s) of {shards['rows']} rows, "
              f"{shards['successes']} samples ({shards['failed_to_download']} failed to download, "
              f"{shards['failed_to_resize']} failed to resize), {shards['image_size']} px "
              f"{shards['resize_mode']} {shards['encode_format']}", file=sys.stderr)


def _config_docs(args: argparse.Namespace) -> None:
    from .config.docs import schema_markdown

    sys.stdout.write(schema_markdown())


@contextlib.contextmanager
def _quiet_libraries(verbose: bool):
    """Hide library log lines while the mixture loads (open_clip warns "initialized randomly" about
    the empty model that checks a checkpoint's shapes; transformers draws a loading bar)."""
    if verbose:
        yield
        return
    logging.disable(logging.WARNING)
    try:
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        yield
    finally:
        logging.disable(logging.NOTSET)


def _load_mixture(args: argparse.Namespace):
    from .mixture import Mixture

    with _quiet_libraries(args.verbose):
        return Mixture.load(args.results, config=args.config, device=args.device)


def _report(result, fmt: str) -> int:
    """Print the result; name each image that did not decode on stderr; 1 if any did not."""
    from .mixture.display import render

    print(render(result, fmt))
    for failed in result.failed:
        print(f"modeflow: warning: skipped {failed.reason}", file=sys.stderr)
    return 1 if result.failed else 0


def _classify(args: argparse.Namespace) -> int:
    from .mixture.arguments import class_list, expert_list, template_list

    classes, templates = class_list(args.classes), template_list(args.templates)
    experts = expert_list(args.experts)
    mixture = _load_mixture(args)
    result = mixture.classify(args.images, classes, templates, top_k=args.top_k, kind=args.weights,
                              experts=experts, batch_size=args.batch_size, progress=args.progress)
    return _report(result, args.format)


def _retrieve(args: argparse.Namespace) -> int:
    from .mixture.arguments import expert_list

    experts = expert_list(args.experts)
    mixture = _load_mixture(args)
    result = mixture.rank_images(args.query, args.images, top_k=args.top_k, kind=args.weights,
                                 experts=experts, batch_size=args.batch_size, progress=args.progress)
    return _report(result, args.format)


def _bundle(args: argparse.Namespace) -> None:
    from .mixture.bundle import make_bundle

    manifest = make_bundle(args.results, args.out, args.config, arm=args.arm)
    size = sum(f["bytes"] for f in manifest["files"])
    print(f"{args.out}: {len(manifest['files'])} files, {size / 2**20:.1f} MiB (arm {manifest['arm']}); "
          f"listed with sha256 in {args.out}/manifest.json")


_MIXTURE_EPILOG = """The results directory must hold a finished ensemble (models/expert_NN.pt, cluster/,
ensemble/routing/, ensemble/arms.jsonl). Routing is the ensemble stage's: the class names (or the
query) are embedded with the text encoder the clustering used (recorded in
ensemble/routing/encoder.json; --config names it for older results) and weighted against the fine
cluster centers. Images that do not decode are named on stderr and in the json's "failed" list;
the others are processed, and the exit status is then 1."""


def _add_mixture_options(p: argparse.ArgumentParser, top_k: int) -> None:
    p.add_argument("--experts", metavar="LIST", help="use only these experts, e.g. 0,2 (their weights "
                   "renormalised to sum to 1; default: all)")
    p.add_argument("--weights", choices=("code", "paper", "uniform"), default="code",
                   help="routing formula: code = MoDE's code (default), paper = the paper's Eqs. 4-6, "
                        "uniform = the mean of the experts")
    p.add_argument("--top-k", type=int, default=top_k, metavar="K",
                   help=f"results per image / query (default: {top_k})")
    p.add_argument("--format", choices=("json", "table"), default="table", help="output format (default: table)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default: 64)")
    p.add_argument("--config", metavar="FILE", help="the run's config file, to name the routing text "
                   "encoder when the results do not record it")
    p.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu, cuda or cuda:N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when there is more than one batch)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the libraries' log lines while loading")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="check a config file as a run's start does and print its shard plan")
    check.add_argument("config", help="path to a config yaml (e.g. config/config.yaml)")
    check.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    check.set_defaults(func=_check_config)

    docs = sub.add_parser("config-docs", help="print config/README.md, rendered from the schema")
    docs.set_defaults(func=_config_docs)

    demo = sub.add_parser(
        "demo-pool", help="build the embedded demo pool into a directory",
        description="Build the embedded demo pool into OUT (images/, urls.parquet, ground_truth.parquet,\n"
                    "tasks/, demo.json) and print demo.json. With --shards, also write OUT/shards/ as\n"
                    "img2dataset's webdataset download of the pool (NNNNN.tar with <key>.jpg/.txt/.json,\n"
                    "NNNNN.parquet, NNNNN_stats.json; no server, no download): a shard directory to add\n"
                    "as new data, e.g. a fifth domain for a finished four-domain mixture:\n"
                    "  modeflow demo-pool new --domains clocks --seed 1 --shards\n"
                    "Pools other than the default (its four domains, seed 0) tag their urls with their\n"
                    "domains and seed, so their uids never collide with the default pool's.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("out", help="output directory (written atomically)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--samples", type=int, default=12000, help="pool rows (default: 12000)")
    demo.add_argument("--image-size", type=int, default=64, help="image side in px (default: 64)")
    demo.add_argument("--domains", nargs="+", default=["shapes", "digits", "textures", "arrows"],
                      help="visual domains, of shapes digits textures arrows clocks "
                           "(default: shapes digits textures arrows; clocks is opt-in)")
    demo.add_argument("--noise-fraction", type=float, default=0.2, help="share of noisy rows (default: 0.2)")
    demo.add_argument("--eval-images-per-class", type=int, default=10,
                      help="held-out test images per class (default: 10)")
    demo.add_argument("--retrieval-pairs", type=int, default=400,
                      help="held-out retrieval pairs (default: 400)")
    demo.add_argument("--shards", action="store_true",
                      help="also write OUT/shards/ as img2dataset webdataset shards of the pool, each image "
                           "resized by img2dataset's Resizer (border, jpg), dead links and corrupt files "
                           "recorded as failed rows; a one-line summary goes to stderr")
    demo.add_argument("--shard-size", type=int, default=10000, metavar="N",
                      help="samples per shard with --shards (img2dataset's number_sample_per_shard; default: 10000)")
    demo.add_argument("--shard-image-size", type=int, default=32, metavar="PX",
                      help="image side in the shards with --shards (the demo download's image_size; default: 32)")
    demo.set_defaults(func=_demo_pool)

    fmt = argparse.RawDescriptionHelpFormatter
    classify = sub.add_parser(
        "classify", help="classify images with your class names through the trained mixture",
        description="Zero-shot classification through the mixture: each expert's cosine logits,\n"
                    "weighted by MoDE's routing of the class names, summed; prints each image's top-k.",
        epilog=_MIXTURE_EPILOG + "\n\nexample:\n  modeflow classify results --classes cat,dog,bird photos/",
        formatter_class=fmt)
    classify.add_argument("results", help="a finished results directory (e.g. results)")
    classify.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                          help="image files, or directories searched for images")
    classify.add_argument("--classes", required=True, metavar="FILE|a,b,c",
                          help="class names: a file with one a line (e.g. a task's classnames.txt) or a comma list")
    classify.add_argument("--templates", default="a photo of a {c}.", metavar="FILE|TEMPLATE",
                          help="prompt templates: a file with one a line (e.g. a task's "
                               "zeroshot_classification_templates.txt) or one template with {c} "
                               "(default: 'a photo of a {c}.')")
    _add_mixture_options(classify, top_k=5)
    classify.set_defaults(func=_classify)

    retrieve = sub.add_parser(
        "retrieve", help="rank images for a text query through the trained mixture",
        description="Text-to-image retrieval through the mixture: the query is routed alone (a\n"
                    "one-class task), each expert's image-query cosines are weighted and summed.",
        epilog=_MIXTURE_EPILOG + '\n\nexample:\n  modeflow retrieve results "a red circle" photos/',
        formatter_class=fmt)
    retrieve.add_argument("results", help="a finished results directory (e.g. results)")
    retrieve.add_argument("query", help="the text query")
    retrieve.add_argument("images", nargs="+", metavar="IMAGE_DIR", help="directories (or files) of images to rank")
    _add_mixture_options(retrieve, top_k=10)
    retrieve.set_defaults(func=_retrieve)

    bundle = sub.add_parser(
        "bundle", help="gather a DataComp-style submission bundle (nothing is uploaded)",
        description="Copy into OUT what DataComp's leaderboard asks for: the subset files the models\n"
                    "trained on, the checkpoints, per-task results in DataComp's eval_results.jsonl\n"
                    "format, each arm's samples seen and training cost, and the config; plus the\n"
                    "cluster model and routing data, and a manifest.json with every file's size and\n"
                    "sha256. Nothing is uploaded.",
        formatter_class=fmt)
    bundle.add_argument("results", help="a finished results directory (e.g. results)")
    bundle.add_argument("out", help="the bundle directory to create (must not exist; written atomically)")
    bundle.add_argument("--config", default="config/config.yaml", metavar="FILE",
                        help="the config the run used (default: config/config.yaml, what snakemake reads "
                             "without --configfile)")
    bundle.add_argument("--arm", default="mode",
                        help="the arm submitted as results.jsonl: mode (MoDE, default), another weighted "
                             "arm (mode_paper, ...), uniform, or a model (expert_00, seed, dense)")
    bundle.set_defaults(func=_bundle)

    from modeflow.mixture.onnx_export import add_parser as add_export_onnx

    add_export_onnx(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ModeflowError as exc:
        print(f"modeflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
