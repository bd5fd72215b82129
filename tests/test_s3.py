"""Object storage: the s3 pre-flight check and the curation stages run against a local S3 (moto).

moto_server runs with IAM auth on (INITIAL_NO_AUTH_ACTION_COUNT), so wrong keys are refused as on
real S3; the first requests create the user and key pair that every test then uses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pytest
import s3fs

from conftest import REPO, SNAKEMAKE, run_snakemake, write_config
from modeflow.common.errors import ConfigError
from modeflow.common.storage import check_default_storage, check_s3_access

BUCKET = "modeflow-test"
# unauthenticated requests moto allows before it checks keys: create user, attach policy, create key
SETUP_ACTIONS = 3
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                   "SNAKEMAKE_STORAGE_S3_ACCESS_KEY", "SNAKEMAKE_STORAGE_S3_SECRET_KEY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:  # moto's own API: not an AWS action, so it does not use up SETUP_ACTIONS
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout} s")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with auth on, one bucket, and a key pair allowed to use it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_ACTIONS))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, proc)
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="workflow")
        iam.put_user_policy(UserName="workflow", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="workflow")["AccessKey"]
        creds = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=creds["key"],
                     aws_secret_access_key=creds["secret"]).create_bucket(Bucket=BUCKET)
        yield {"url": url, **creds}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def env_with(creds: dict | None, home: Path) -> dict:
    """The test process's environment with only the given S3 credentials (none: no credentials)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env["HOME"] = str(home)  # no ~/.aws of the machine
    if creds:
        env.update(AWS_ACCESS_KEY_ID=creds["key"], AWS_SECRET_ACCESS_KEY=creds["secret"])
    return env


def snakemake_s3(snakefile: Path, workdir: Path, s3: dict, prefix: str, *args: str, env: dict,
                 timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(snakefile), "--directory", str(workdir), "--cores", "2",
           "--default-storage-provider", "s3", "--default-storage-prefix", prefix,
           # "=": the plugin's options take several values and would swallow the targets
           f"--storage-s3-endpoint-url={s3['url']}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


# --- check_s3_access ------------------------------------------------------------------------------


def test_access_ok_with_options_and_with_environment(s3, monkeypatch):
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    check_s3_access(f"s3://{BUCKET}/run", endpoint_url=s3["url"], access_key=s3["key"], secret_key=s3["secret"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3["secret"])
    check_s3_access(f"s3://{BUCKET}", endpoint_url=s3["url"])


def test_missing_credentials_say_what_to_set_without_network(s3, monkeypatch):
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        check_s3_access(f"s3://{BUCKET}/run", endpoint_url=s3["url"], access_key=s3["key"])
    assert time.monotonic() - start < 2
    message = str(err.value)
    assert "secret key" in message and BUCKET in message
    assert "AWS_SECRET_ACCESS_KEY" in message and "--storage-s3-secret-key" in message


@pytest.mark.parametrize("which", ["secret", "key id"])
def test_wrong_credentials_name_endpoint_and_bucket_never_the_secret(s3, which):
    key, secret = (s3["key"], "not-the-secret-x") if which == "secret" else ("AKIAWRONGWRONGWRONGX", s3["secret"])
    with pytest.raises(ConfigError) as err:
        check_s3_access(f"s3://{BUCKET}/run", endpoint_url=s3["url"], access_key=key, secret_key=secret)
    message = str(err.value)
    assert "rejected" in message and s3["url"] in message and BUCKET in message
    assert secret not in message and key not in message  # only the key id's last 4 characters


def test_bucket_that_does_not_exist_is_named(s3):
    with pytest.raises(ConfigError, match="'no-such-bucket'.*does not exist"):
        check_s3_access("s3://no-such-bucket/run", endpoint_url=s3["url"], access_key=s3["key"],
                        secret_key=s3["secret"])


def test_unreachable_endpoint_fails_fast():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConfigError, match="cannot reach S3 endpoint"):
        check_s3_access(f"s3://{BUCKET}/run", endpoint_url=url, access_key="a", secret_key="b", timeout=2)
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("prefix", ["", "gs://bucket/x", "s3:///x", "bucket/x"])
def test_prefix_must_be_an_s3_url(prefix):
    with pytest.raises(ConfigError, match="expected s3://"):
        check_s3_access(prefix, access_key="a", secret_key="b")


# --- check_default_storage: reading Snakemake's own settings at parse time ------------------------

PREFLIGHT_SNAKEFILE = """
from modeflow.common.storage import check_default_storage
from modeflow.common.errors import ModeflowError
from snakemake.exceptions import WorkflowError

try:
    check_default_storage(workflow)
except ModeflowError as exc:
    raise WorkflowError(str(exc)) from None

rule done:
    output: "done.txt"
    shell: "echo ok > {output}"
"""


@pytest.mark.parametrize("case", ["ok", "missing", "wrong", "no bucket", "options"])
def test_preflight_snippet_reads_snakemake_settings(s3, tmp_path, case):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(PREFLIGHT_SNAKEFILE)
    creds = {"missing": None, "wrong": {"key": s3["key"], "secret": "wrong-secret-y"}, "options": None}.get(case, s3)
    bucket = "no-such-bucket" if case == "no bucket" else BUCKET
    extra = [f"--storage-s3-access-key={s3['key']}", f"--storage-s3-secret-key={s3['secret']}"] if case == "options" else []
    start = time.monotonic()
    proc = snakemake_s3(snakefile, tmp_path, s3, f"s3://{bucket}/preflight-{case}", *extra, "done.txt",
                        env=env_with(creds, tmp_path), timeout=120)
    output = proc.stdout + proc.stderr
    if case in {"ok", "options"}:
        assert proc.returncode == 0, output[-3000:]
        return
    assert proc.returncode != 0
    assert time.monotonic() - start < 60  # the interpreter start dominates; no retries or hangs
    assert "Traceback" not in proc.stderr, output[-3000:]
    expected = {"missing": "AWS_ACCESS_KEY_ID", "wrong": "rejected", "no bucket": "'no-such-bucket'"}[case]
    assert expected in output, output[-3000:]
    assert "wrong-secret-y" not in output


# --- the curation stages against S3, compared with a local run -----------------------------------

# one chunk (fewer img2dataset start-ups) and a subset that needs no seed model: curation only
S3_OVERRIDES = {"download.shard_size": 300, "filter.use": "basic_dedup"}
TARGET = "results/reshard/summary.json"


def tar_members(data: bytes, tmp: Path) -> list[tuple[str, bytes]]:
    """Member names and bytes; tar headers (mtimes) differ between runs and are not content."""
    tmp.write_bytes(data)
    with tarfile.open(tmp) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


@pytest.mark.e2e
def test_curation_through_s3_equals_local_run(s3, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", S3_OVERRIDES)
    local = tmp_path / "local"
    local.mkdir()
    run_snakemake(local, TARGET, configfile=config)

    # Two working directories that share only the bucket, as Kubernetes pods do: the second
    # finishes from what the first left in storage (phase 2 of the reshard, the summary).
    prefix = f"s3://{BUCKET}/run"
    for stage, target in [("first", "results/reshard/index/00000.parquet"), ("second", TARGET)]:
        workdir = tmp_path / stage
        workdir.mkdir()
        proc = snakemake_s3(REPO / "Snakefile", workdir, s3, prefix, f"--configfile={config}", target,
                            env=env_with(s3, tmp_path))
        assert proc.returncode == 0, (stage, proc.stdout[-3000:], proc.stderr[-6000:])
        # outputs went to the bucket; only scratch (download staging) may stay in the working directory
        assert not list((workdir / "results").glob("*/*.*")), stage
    assert "rule download" not in proc.stderr + proc.stdout  # the second stage reused the stored shards

    fs = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], client_kwargs={"endpoint_url": s3["url"]})
    root = f"{BUCKET}/run/results"
    keys = {k.removeprefix(root + "/") for k in fs.find(root)}
    assert TARGET.removeprefix("results/") in keys
    assert "demo/ground_truth.parquet" in keys  # directory() outputs are stored file by file
    assert "shards/00000/00000.tar" in keys

    subset = "filter/subsets/basic_dedup.npy"
    assert fs.cat(f"{root}/{subset}") == (local / "results" / subset).read_bytes()
    experts = sorted(p.name for p in (local / "results" / "experts").iterdir())
    assert experts == ["00", "01", "02", "03"]
    for expert in experts:
        local_dir = local / "results" / "experts" / expert
        ids = f"experts/{expert}/sample_ids.npy"
        assert fs.cat(f"{root}/{ids}") == (local / "results" / ids).read_bytes()
        tars = sorted(p.name for p in local_dir.glob("*.tar"))
        assert tars and sorted(k.rsplit("/", 1)[1] for k in keys if k.startswith(f"experts/{expert}/")
                               and k.endswith(".tar")) == tars
        for name in tars:
            remote_members = tar_members(fs.cat(f"{root}/experts/{expert}/{name}"), tmp_path / "r.tar")
            assert remote_members == tar_members((local_dir / name).read_bytes(), tmp_path / "l.tar")
    assert json.loads(fs.cat(f"{root}/reshard/summary.json")) == json.loads(
        (local / "results" / "reshard" / "summary.json").read_text())


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["missing", "wrong", "no bucket"])
def test_workflow_refuses_bad_storage_settings_before_any_job(s3, tmp_path, case):
    config = write_config(tmp_path / "tiny.yaml", S3_OVERRIDES)
    creds = {"missing": None, "wrong": {"key": s3["key"], "secret": "wrong-secret-z"}}.get(case, s3)
    bucket = "no-such-bucket" if case == "no bucket" else BUCKET
    start = time.monotonic()
    proc = snakemake_s3(REPO / "Snakefile", tmp_path, s3, f"s3://{bucket}/run", f"--configfile={config}", TARGET,
                        env=env_with(creds, tmp_path), timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert time.monotonic() - start < 60
    expected = {"missing": "AWS_ACCESS_KEY_ID", "wrong": "rejected", "no bucket": "'no-such-bucket'"}[case]
    assert expected in output, output[-3000:]
    assert "wrong-secret-z" not in output
    assert "localrule" not in output  # failed at parse time, before any job ran
    bucket_keys = boto3.client("s3", endpoint_url=s3["url"], region_name="us-east-1", aws_access_key_id=s3["key"],
                               aws_secret_access_key=s3["secret"]).list_buckets()["Buckets"]
    assert "no-such-bucket" not in {b["Name"] for b in bucket_keys}  # the plugin would have created it
