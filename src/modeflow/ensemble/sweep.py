"""A sweep over MoDE's levers: the whole workflow once per grid point, each point in a directory of
its own, and the claims table of every point side by side.

The levers are config keys (docs/method.md, "Levers"): train.seed_epochs of train.schedule_epochs
(the seed fraction; T − S is the experts' epochs), cluster.num_fine (m), reshard.ooc_ratio,
cluster.num_experts (n) and ensemble.sharp_temperature (routing sharpness). A grid is given as
`KEY=V1,V2,...` settings; several settings make their product.

    python -m modeflow.ensemble.sweep --set train.seed_epochs=2,4,6,7 --out sweeps/seed_fraction

Each point is `snakemake --directory <out>/<point> --configfile <out>/<point>/config.yaml all` (the
base config with the point's values), then its ensemble/claims.json is read; `<out>/sweep.md` and
`<out>/sweep.csv` tabulate them (one row per point and claim). A point already finished is not
rerun (Snakemake finds nothing to do). With `--start-from RUN`, each new point directory starts as
a copy of a finished run (its results and Snakemake's metadata), so the stages a lever does not
touch (download, embed, clustering and filtering for the training levers) are not rerun: Snakemake
reruns exactly what the changed config invalidates. Figures are reported as they come, never tuned.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from modeflow.common.atomic import atomic_path
from modeflow.common.errors import ConfigError
from modeflow.ensemble.summary import CLAIMS_JSON, read_claims

REPO = Path(__file__).resolve().parents[3]  # the checkout this package runs from (editable install)
LEVERS = ("train.seed_epochs", "train.schedule_epochs", "cluster.num_fine", "reshard.ooc_ratio",
          "cluster.num_experts", "ensemble.sharp_temperature")


def parse_grid(settings: Sequence[str]) -> list[dict]:
    """["a.b=1,2", "c=x"] -> [{"a.b": 1, "c": "x"}, {"a.b": 2, "c": "x"}] (values read as YAML)."""
    axes = []
    for setting in settings:
        key, sep, values = setting.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"sweep --set {setting!r}: expected KEY=V1,V2,... (e.g. train.seed_epochs=4,6)")
        axes.append([(key.strip(), yaml.safe_load(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def point_name(point: Mapping) -> str:
    """A directory name for a grid point: "train.seed_epochs=4_cluster.num_fine=32"."""
    return "_".join(f"{k}={v}" for k, v in point.items()) or "base"


def with_values(config: Mapping, point: Mapping) -> dict:
    """A copy of `config` with the point's dotted keys set."""
    out = json.loads(json.dumps(config))
    for key, value in point.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"sweep: {key!r} goes through a value that is not a mapping")
        node[leaf] = value
    return out


def snakemake_command(snakefile: Path, workdir: Path, configfile: Path, cores: int,
                      extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
            "--cores", str(cores), f"--configfile={configfile}", *extra, "all"]


# What a copied run keeps of .snakemake/: the records of how each output was made. Locks, logs and
# the marks of jobs that were running belong to the run that wrote them.
_SNAKEMAKE_STATE_SKIPPED = ("locks", "incomplete", "log", "shadow", "auxiliary", "iocache")


def copy_finished_run(source: Path, workdir: Path, results_dir: str = "results") -> None:
    """Make `workdir` a copy of the finished run in `source`: its results and Snakemake's metadata,
    with modification times kept (Snakemake's up-to-date test reads them)."""
    if not (source / results_dir).is_dir() or not (source / ".snakemake" / "metadata").is_dir():
        raise ConfigError(f"sweep --start-from {source}: not a finished run (expected {source / results_dir} "
                          f"and {source / '.snakemake' / 'metadata'})")
    tmp = workdir.with_name(f".tmp-{workdir.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copytree(source / results_dir, tmp / results_dir, symlinks=True)
    shutil.copytree(source / ".snakemake", tmp / ".snakemake", symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == source / ".snakemake"
                                             and n in _SNAKEMAKE_STATE_SKIPPED])
    tmp.rename(workdir)


def run_point(config: Mapping, point: Mapping, out_dir: Path, *, cores: int, snakefile: Path,
              extra: Sequence[str] = (), runner=subprocess.run, start_from: Path | None = None) -> Path:
    """Write the point's config and run the workflow in its directory; returns the directory. A new
    directory starts as a copy of `start_from` (a finished run) when one is given."""
    workdir = out_dir / point_name(point)
    if start_from is not None and not workdir.exists():
        copy_finished_run(start_from, workdir, config.get("results_dir", "results"))
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    with atomic_path(configfile) as tmp:
        tmp.write_text(yaml.safe_dump(with_values(config, point), sort_keys=False))
    with open(workdir / "snakemake.log", "w") as log:
        proc = runner(snakemake_command(snakefile, workdir, configfile, cores, extra), stdout=log,
                      stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"sweep point {point_name(point)} failed (exit {proc.returncode}); see {workdir / 'snakemake.log'}")
    return workdir


def point_claims(workdir: Path, results_dir: str = "results") -> list[dict] | None:
    """The point's claims rows, or None when it has none (a dry run, or not finished)."""
    path = workdir / results_dir / "ensemble" / CLAIMS_JSON
    return read_claims(path) if path.is_file() else None


def _cell(row: Mapping) -> str:
    if row["difference"] is None:
        return row["verdict"]
    return (f"{100 * row['difference']:+.1f} [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}] "
            f"{row['verdict']}")


def sweep_table(points: Sequence[Mapping], claims: Sequence[Sequence[Mapping] | None]) -> list[str]:
    """Markdown: one row per grid point, one column per claim (difference [95% CI] verdict, in points)."""
    keys = []
    for rows in claims:
        for r in rows or []:
            if r["claim"] not in keys and not r["claim"].startswith("a:"):
                keys.append(r["claim"])
    levers = list(points[0]) if points else []
    lines = ["| " + " | ".join(levers + [f"({k})" for k in keys]) + " |", "|---" * (len(levers) + len(keys)) + "|"]
    for point, rows in zip(points, claims):
        by_key = {r["claim"]: r for r in rows or []}
        cells = [str(point[k]) for k in levers] + [_cell(by_key[k]) if k in by_key else "not run" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    statements: dict[str, list[str]] = {}  # a claim's statement can name a lever's value (g: the temperature)
    for rows in claims:
        for r in rows or []:
            if r["statement"] not in statements.setdefault(r["claim"], []):
                statements[r["claim"]].append(r["statement"])
    lines += [""] + [f"({k}) {' | '.join(statements[k])}" for k in keys]
    return lines


def write_sweep(out_dir: Path, points: Sequence[Mapping], claims: Sequence[Sequence[Mapping] | None]) -> None:
    """<out_dir>/sweep.md (the table) and sweep.csv (one row per point and claim)."""
    with atomic_path(out_dir / "sweep.md") as tmp:
        tmp.write_text("\n".join(["# Sweep: the claims table per grid point", ""] + sweep_table(points, claims)) + "\n")
    buf = io.StringIO()
    fields = [*(points[0] if points else {}), "claim", "difference", "ci_low", "ci_high", "verdict", "statement"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for point, rows in zip(points, claims):
        for r in rows or []:
            writer.writerow({**point, **r})
    with atomic_path(out_dir / "sweep.csv") as tmp:
        tmp.write_text(buf.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeflow.ensemble.sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Levers: " + ", ".join(LEVERS))
    parser.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml",
                        help="base config (default: the demo's config/config.yaml)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=V1,V2",
                        help="a lever and its values; repeat for a product grid")
    parser.add_argument("--out", type=Path, required=True, help="sweep directory (one subdirectory per point)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    parser.add_argument("--dry-run", action="store_true", help="plan every point (snakemake -n), train nothing")
    parser.add_argument("--start-from", type=Path, metavar="RUN",
                        help="a finished run directory of the base config: each new point starts as a copy "
                             "of it, so only the stages its lever changes are rerun")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.configfile.read_text()) or {}
    points = parse_grid(args.settings)
    claims = []
    for point in points:
        print(f"sweep point {point_name(point)} ...", flush=True)
        workdir = run_point(config, point, args.out, cores=args.cores, snakefile=args.snakefile,
                            extra=["-n"] if args.dry_run else [], start_from=args.start_from)
        claims.append(point_claims(workdir, config.get("results_dir", "results")))
    write_sweep(args.out, points, claims)
    print((args.out / "sweep.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
