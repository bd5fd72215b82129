"""Planning benchmark: `snakemake -n` on a pool of 10,000 existing shards and 16 experts.

The shards are empty files (planning only lists their names; it never opens them). Printed: the
seconds (wall clock, and CPU of the snakemake process: steadier on a shared machine) and job count
of the dry run, and — as the baseline measured in the same run — the same for `snakemake -n` on a
one-rule Snakefile (interpreter + snakemake start-up), so the ratio shows what the DAG itself
costs. Bar: the dry run finishes in <= 30 s wall clock (exit 1 otherwise). Figures recorded so far:
bench/README.md.

    .venv/bin/python bench/bench_plan.py [--shards 10000] [--experts 16] [--profile profiles/slurm]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
LIMIT_S = 30.0


def make_fixture(root: Path, num_shards: int, num_experts: int) -> Path:
    shards = root / "shards"
    shards.mkdir()
    for i in range(num_shards):
        (shards / f"{i:05d}.tar").touch()
    tasks = [root / "tasks" / name for name in ("imagenet", "flickr30k")]  # planning only reads paths
    for task in tasks:
        task.mkdir(parents=True)
    config = {
        "results_dir": str(root / "results"),
        "pool": {"source": "shards", "shards": {"path": str(shards)}},
        "cluster": {"num_experts": num_experts, "num_fine": 1024},
        "evaluate": {"tasks": [str(t) for t in tasks]},
    }
    path = root / "plan.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, output) of one `snakemake -n`."""
    start, start_cpu = time.perf_counter(), children_cpu_seconds()
    proc = subprocess.run([str(SNAKEMAKE), "-n", "--cores", "2", *args], cwd=cwd,
                          capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, children_cpu_seconds() - start_cpu
    if proc.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, cpu, proc.stdout + proc.stderr


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    counts = {}
    table = output.split("Job stats:", 1)[-1]
    for line in table.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match:
            counts[match[1]] = int(match[2])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--profile", help="also plan through this profile (e.g. profiles/slurm)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = make_fixture(root, args.shards, args.experts)
        trivial = root / "Trivial.smk"
        trivial.write_text("rule all:\n    output: 'x'\n    shell: 'touch {output}'\n")

        base_s, base_cpu, _ = dry_run(["-s", str(trivial)], root)
        extra = ["--profile", str(REPO / args.profile)] if args.profile else []
        plan_args = ["-s", str(REPO / "Snakefile"), f"--configfile={config}", *extra]
        plan_s, plan_cpu, output = dry_run(plan_args, root)

    counts = job_counts(output)
    print(f"pool: {args.shards} shards, {args.experts} experts")
    print(f"jobs planned: {counts.get('total', '?')}  " + ", ".join(f"{k}={v}" for k, v in counts.items() if k != "total"))
    print(f"load average (1 min) after:    {os.getloadavg()[0]:6.1f} on {os.cpu_count()} CPUs")
    print(f"snakemake -n, modeflow DAG:    {plan_s:6.1f} s wall  {plan_cpu:6.1f} s CPU")
    print(f"snakemake -n, one-rule DAG:    {base_s:6.1f} s wall  {base_cpu:6.1f} s CPU (baseline)")
    print(f"ratio (modeflow / baseline):   {plan_s / base_s:6.1f}x wall "
          f"{plan_cpu / base_cpu:6.1f}x CPU")
    if plan_s > LIMIT_S:
        sys.exit(f"FAIL: planning took {plan_s:.1f} s > {LIMIT_S:.0f} s")
    print(f"OK: planning within {LIMIT_S:.0f} s")


if __name__ == "__main__":
    main()
