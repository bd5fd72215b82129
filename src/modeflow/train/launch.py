"""Starting modeflow.train.entry: the launcher command (one process on CPU, torchrun on GPUs, one
torchrun per node through srun on a Slurm allocation) and the subprocess whose output is streamed."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Mapping

from modeflow.common.errors import ConfigError

ENTRY_MODULE = "modeflow.train.entry"


def first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list, by `scontrol show hostnames` (parsed here if absent)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, check=True).stdout.split()
        if out:
            return out[0]
    except (FileNotFoundError, subprocess.CalledProcessError):
        pass
    # "node[03-05,09],gpu7" -> "node03": the first name, the first number of its first range
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ConfigError(f"SLURM_JOB_NODELIST: cannot read a host from {nodelist!r}")
    prefix, ranges = m[1], m[2]
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def launcher_argv(gpus: int, nodes: int, env: Mapping[str, str]) -> list[str]:
    """The command that starts modeflow.train.entry: one process on cpu, torchrun on GPUs.

    Several nodes: one torchrun per node through `srun`, meeting at the first host of the Slurm
    allocation (c10d rendezvous, id = the Slurm job id).
    """
    entry = ["-m", ENTRY_MODULE]
    if gpus == 0:
        if nodes > 1:
            raise ConfigError("train: several nodes need GPUs (gpus >= 1)")
        return [sys.executable, *entry]
    # `python -m torch.distributed.run` is torchrun, without relying on PATH
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        return [*torchrun, "--standalone", "--nproc-per-node", str(gpus), *entry]
    if not env.get("SLURM_JOB_NODELIST"):
        raise ConfigError(f"train: {nodes} nodes need a Slurm allocation (SLURM_JOB_NODELIST unset)")
    master = env.get("MASTER_ADDR") or first_slurm_host(env["SLURM_JOB_NODELIST"])
    port = env.get("MASTER_PORT", "29500")
    return ["srun", "--nodes", str(nodes), "--ntasks-per-node", "1", *torchrun,
            "--nnodes", str(nodes), "--nproc-per-node", str(gpus),
            "--rdzv-id", env.get("SLURM_JOB_ID", "modeflow"), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"{master}:{port}", *entry]


def stream_command(cmd: list[str], env: Mapping[str, str], sink) -> tuple[int, list[str]]:
    """Run `cmd`, copying its output line by line to `sink`; return (exit code, last lines)."""
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(env), bufsize=1) as proc:
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            tail = (tail + [line.rstrip()])[-40:]
    return proc.returncode, tail
