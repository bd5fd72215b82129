"""Planning benchmark: `snakemake -n` on a pool of 10,000 existing shards and 16 experts.

The shards are empty files (planning only lists their names; it never opens them). Printed: the
seconds and job count of the dry run, and — as the baseline measured in the same run — the
seconds of `snakemake -n` on a one-rule Snakefile (interpreter + snakemake start-up), so the ratio
shows what the DAG itself costs. Acceptance (issue 3): the dry run finishes in <= 30 s.

    .venv/bin/python bench/bench_plan.py [--shards 10000] [--experts 16] [--profile profiles/slurm]
"""

from __future__ import annotations

import argparse
import re
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


def dry_run(args: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([str(SNAKEMAKE), "-n", "--cores", "2", *args], cwd=cwd,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


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

        base_s, _ = dry_run(["-s", str(trivial)], root)
        extra = ["--profile", str(REPO / args.profile)] if args.profile else []
        plan_s, output = dry_run(["-s", str(REPO / "Snakefile"), f"--configfile={config}", *extra], root)

    counts = job_counts(output)
    print(f"pool: {args.shards} shards, {args.experts} experts")
    print(f"jobs planned: {counts.get('total', '?')}  " + ", ".join(f"{k}={v}" for k, v in counts.items() if k != "total"))
    print(f"snakemake -n, modeflow DAG:    {plan_s:6.1f} s")
    print(f"snakemake -n, one-rule DAG:    {base_s:6.1f} s (baseline: start-up)")
    print(f"ratio (modeflow / baseline):   {plan_s / base_s:6.1f}x")
    if plan_s > LIMIT_S:
        sys.exit(f"FAIL: planning took {plan_s:.1f} s > {LIMIT_S:.0f} s")
    print(f"OK: planning within {LIMIT_S:.0f} s")


if __name__ == "__main__":
    main()
