"""`modeflow` command: the package's steps without Snakemake, for checking and one-off use.

The pipeline itself is run with `snakemake` (see README.md); this CLI validates configs, shows the
shard plan, and builds the demo pool on its own.
"""

from __future__ import annotations

import argparse
import json
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


def _config_docs(args: argparse.Namespace) -> None:
    from .config.docs import schema_markdown

    sys.stdout.write(schema_markdown())


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

    demo = sub.add_parser("demo-pool", help="build the embedded demo pool into a directory")
    demo.add_argument("out", help="output directory (written atomically)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--samples", type=int, default=12000, help="pool rows (default: 12000)")
    demo.add_argument("--image-size", type=int, default=64, help="image side in px (default: 64)")
    demo.add_argument("--domains", nargs="+", default=["shapes", "digits", "textures", "arrows"],
                      help="visual domains (default: shapes digits textures arrows)")
    demo.add_argument("--noise-fraction", type=float, default=0.2, help="share of noisy rows (default: 0.2)")
    demo.add_argument("--eval-images-per-class", type=int, default=40,
                      help="held-out test images per class (default: 40)")
    demo.add_argument("--retrieval-pairs", type=int, default=400,
                      help="held-out retrieval pairs (default: 400)")
    demo.set_defaults(func=_demo_pool)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ModeflowError as exc:
        print(f"modeflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
