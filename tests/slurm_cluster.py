"""A real single-node Slurm cluster in a temporary directory, for testing the Slurm profile.

munged, slurmctld and slurmd (Debian's Slurm 22.05) run as root on 127.0.0.1 with every file
(config, keys, state, spool, logs, pid files) under one directory and ports picked free, so
several clusters can run side by side on one machine. The node has a fake GPU (gres on /dev/null)
and two partitions, `cpu` (the default) and `gpu`.

In tests: the `slurm_cluster` fixture. By hand (see README, "Running on a cluster"):

    python -m tests.slurm_cluster            # prints the exports to paste, runs until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel")
INSTALL_HINT = ("apt-get update && apt-get install -y slurmctld slurmd slurm-client munge"
                "   (or: bash tests/ci_system_packages.sh)")
SUBMIT_LINE = re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+)")


class SlurmClusterError(RuntimeError):
    """The local cluster could not be started, queried or stopped."""


def require_slurm() -> None:
    """Fail loudly (never skip) when the Debian packages are missing."""
    missing = [tool for tool in DAEMONS + CLIENTS if not _find(tool)]
    if missing:
        raise SlurmClusterError(f"Slurm/munge tools not found: {', '.join(missing)}. Install them as root with:\n"
                                f"    {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise SlurmClusterError("the local Slurm cluster runs its daemons as root (SlurmUser=root); run as root")


def _find(tool: str) -> str | None:
    # the daemons live in /usr/sbin, which a non-login PATH may lack
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class SlurmCluster:
    """A running cluster: `env` is what a client (sbatch, snakemake) needs; helpers query it."""

    root: Path
    node: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    def client(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise SlurmClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def node_state(self) -> str:
        """The node's state, e.g. "idle" (sinfo prints one line per partition the node is in)."""
        states = set(self.client("sinfo", "--noheader", "--Node", "--format=%T", check=False).split())
        return states.pop() if len(states) == 1 else ",".join(sorted(states))

    def squeue(self) -> list[dict[str, str]]:
        """Jobs slurmctld still knows (MinJobAge keeps finished ones an hour), all states."""
        out = self.client("squeue", "--noheader", "--states=all", "--format=%i|%P|%j|%T|%k")
        keys = ("job_id", "partition", "name", "state", "comment")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (Partition, JobState, ExitCode, Comment, TresPerNode, ...)."""
        out = self.client("scontrol", "show", "job", "--oneliner", str(job_id))
        return dict(item.split("=", 1) for item in out.split() if "=" in item)

    def jobs_with_comment(self, prefix: str, state: str | None = None) -> list[dict[str, str]]:
        """squeue's jobs whose comment (snakemake's `rule_<rule>_wildcards_<values>`) starts with
        `prefix`, oldest first, optionally only those in `state` (e.g. "RUNNING")."""
        jobs = [job for job in self.squeue() if job["comment"].startswith(prefix)
                and (state is None or job["state"] == state)]
        return sorted(jobs, key=lambda job: int(job["job_id"]))

    def cancel(self, job_id: str, timeout: float = 60) -> str:
        """scancel `job_id` as a user or an admin would, and wait until Slurm has ended it;
        return its final state (CANCELLED, or e.g. COMPLETED when it ended first)."""
        self.client("scancel", str(job_id))
        ended = ("CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
        if not _wait_for(lambda: self.job(job_id)["JobState"] in ended, timeout):
            raise SlurmClusterError(f"job {job_id} still {self.job(job_id)['JobState']} {timeout}s after scancel")
        return self.job(job_id)["JobState"]

    def submitted_job_ids(self) -> list[str]:
        """Every batch job slurmctld accepted (sbatch), from its log: job history without sacct."""
        log = self.log_file("slurmctld")
        return SUBMIT_LINE.findall(log.read_text()) if log.exists() else []

    def exports(self) -> str:
        return (f"export SLURM_CONF={self.env['SLURM_CONF']}\n"
                f"export PATH={self.bin_dir}:$PATH")


def _write_config(cluster: SlurmCluster) -> None:
    root, node = cluster.root, cluster.node
    for sub in ("etc", "run", "log", "state", "spool", "munge", "bin"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge", 0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)

    cpus = os.cpu_count() or 1
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.85)
    socket_path = root / "munge" / "munge.socket.2"
    cluster.conf.write_text(f"""\
# Written by tests/slurm_cluster.py: a single-node cluster on 127.0.0.1, everything under {root}
ClusterName=modeflow-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={cluster.pid_file('slurmctld')}
SlurmdPidFile={cluster.pid_file('slurmd')}
SlurmctldLogFile={cluster.log_file('slurmctld')}
SlurmdLogFile={cluster.log_file('slurmd')}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
MpiDefault=none
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default each job would take the whole node's memory
DefMemPerCPU=1000
# finished jobs stay visible to squeue/scontrol (no sacct here) for an hour
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
""")
    # a fake GPU: file-less gres makes the node INVAL, so it points at /dev/null
    (root / "etc" / "gres.conf").write_text(f"AutoDetect=off\nNodeName={node} Name=gpu File=/dev/null\n")

    # snakemake's slurm job step strips every SLURM_* variable (SLURM_CONF too) before its inner
    # srun; this wrapper, first on PATH inside jobs, puts it back.
    srun = cluster.bin_dir / "srun"
    srun.write_text(f'#!/bin/sh\nexport SLURM_CONF={cluster.conf}\nexec {_find("srun")} "$@"\n')
    srun.chmod(0o755)

    cluster.env = {**os.environ, "SLURM_CONF": str(cluster.conf),
                   "PATH": f"{cluster.bin_dir}:{os.environ.get('PATH', '')}:/usr/sbin"}
    cluster.env.pop("SLURM_JOB_ID", None)  # a harness started inside a job must not look like a step


def _start_daemons(cluster: SlurmCluster) -> None:
    root = cluster.root
    steps = {
        "munged": [_find("munged"), "--force", f"--socket={root / 'munge' / 'munge.socket.2'}",
                   f"--key-file={root / 'munge' / 'munge.key'}", f"--pid-file={cluster.pid_file('munged')}",
                   f"--log-file={cluster.log_file('munged')}", f"--seed-file={root / 'munge' / 'munged.seed'}"],
        "slurmctld": [_find("slurmctld"), "-i", "-f", str(cluster.conf)],
        "slurmd": [_find("slurmd"), "-f", str(cluster.conf), "-N", cluster.node],
    }
    for daemon, cmd in steps.items():
        proc = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not _wait_for(lambda: _read_pid(cluster, daemon) is not None, 20):
            raise SlurmClusterError(f"{daemon} did not start ({proc.returncode}): {proc.stderr.strip()}\n"
                                    f"{_tail(cluster.log_file(daemon))}")


def _read_pid(cluster: SlurmCluster, daemon: str) -> int | None:
    try:
        pid = int(cluster.pid_file(daemon).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else f"({path} missing)"


def stop(cluster: SlurmCluster) -> None:
    """Stop the daemons by their pid files (slurmd first, munged last) and check each is gone."""
    survivors = []
    for daemon in reversed(DAEMONS):
        pid = _read_pid(cluster, daemon)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        if not _wait_for(lambda: not _alive(pid), 15):
            os.kill(pid, signal.SIGKILL)
            if not _wait_for(lambda: not _alive(pid), 5):
                survivors.append(f"{daemon} (pid {pid})")
    if survivors:
        raise SlurmClusterError(f"still running after SIGKILL: {', '.join(survivors)}")


@contextmanager
def running_cluster(root: Path, ready_timeout: float = 60) -> Iterator[SlurmCluster]:
    """Start the cluster under `root`, wait until its node is idle, stop it on exit (even on error)."""
    require_slurm()
    cluster = SlurmCluster(root=Path(root).resolve(), node=socket.gethostname().split(".")[0])
    _write_config(cluster)
    try:
        _start_daemons(cluster)
        if not _wait_for(lambda: cluster.node_state() == "idle", ready_timeout):
            raise SlurmClusterError(f"node not idle after {ready_timeout}s (state: {cluster.node_state()!r})\n"
                                    f"{_tail(cluster.log_file('slurmctld'))}\n{_tail(cluster.log_file('slurmd'))}")
        yield cluster
    finally:
        stop(cluster)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    # short root: slurmd's spool path and the munge socket must fit in a unix socket name
    root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    try:
        with running_cluster(root) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a single-node Slurm cluster on 127.0.0.1 until Ctrl-C.")
    parser.add_argument("--dir", type=Path, help="where its files go (default: a new /tmp/slurm-* directory)")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with running_cluster(root) as cluster:
        print(f"Slurm cluster up (node {cluster.node}, partitions cpu [default] and gpu, files in {root}).\n"
              f"In another shell:\n{cluster.exports()}\n"
              "    snakemake --profile profiles/slurm all\nCtrl-C stops the daemons.", flush=True)
        while not stop_requested:
            time.sleep(0.5)
    print("Slurm daemons stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
