"""Object storage pre-flight: check an s3:// prefix is reachable with the given credentials.

Snakemake's s3 storage plugin moves files in and out of the bucket; it finds out about missing or
wrong credentials only when the first job stages its output, after minutes of work (and it creates
a missing bucket instead of naming a typo). `check_default_storage` runs at parse time instead and
fails within seconds with an error that says what to set.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from modeflow.common.errors import ConfigError

CREDENTIAL_HELP = (
    "set the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the s3 storage "
    "options --storage-s3-access-key / --storage-s3-secret-key (profile keys storage-s3-access-key / "
    "storage-s3-secret-key, or SNAKEMAKE_STORAGE_S3_ACCESS_KEY / SNAKEMAKE_STORAGE_S3_SECRET_KEY)"
)


def parse_s3_prefix(prefix: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://bucket/some/path`; ConfigError naming the prefix otherwise."""
    parsed = urlparse(prefix or "")
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"default storage prefix {prefix!r}: expected s3://<bucket>/<path>")
    return parsed.netloc, parsed.path.strip("/")


def _where(bucket: str, endpoint_url: str | None) -> str:
    return f"bucket {bucket!r} at {endpoint_url or 'AWS S3'}"


def check_s3_access(prefix: str, *, endpoint_url: str | None = None, access_key: str | None = None,
                    secret_key: str | None = None, token: str | None = None, region: str | None = None,
                    timeout: float = 10) -> None:
    """Raise ConfigError unless the bucket of `prefix` exists and the credentials may read it.

    Credentials come from the arguments (the plugin's storage options), else from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); never from boto's wider chain,
    whose instance-metadata lookup can stall for a long time off-cloud.
    """
    bucket, _ = parse_s3_prefix(prefix)
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = token or os.environ.get("AWS_SESSION_TOKEN")
    missing = [name for name, value in [("access key", access_key), ("secret key", secret_key)] if not value]
    if missing:
        raise ConfigError(f"no S3 {' and no '.join(missing)} for {_where(bucket, endpoint_url)}: {CREDENTIAL_HELP}")

    import boto3  # deferred: only runs that use object storage pay for the import
    import botocore.config
    import botocore.exceptions

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token or None,
        # short timeouts and one retry: a wrong endpoint must fail in seconds, not hang the run
        config=botocore.config.Config(connect_timeout=timeout, read_timeout=timeout,
                                      retries={"max_attempts": 2, "mode": "standard"}),
    )
    where = _where(bucket, endpoint_url)
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"404", "NoSuchBucket"} or status == 404:
            raise ConfigError(f"{where} does not exist: create it or fix the default storage prefix {prefix!r}") from None
        if code in {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"} or status == 403:
            raise ConfigError(
                f"S3 credentials rejected for {where} (access key id ending ...{access_key[-4:]}): "
                f"check the key pair and its permissions; {CREDENTIAL_HELP}"
            ) from None
        raise ConfigError(f"cannot access {where}: S3 answered {code or status}") from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError) as exc:
        raise ConfigError(f"cannot reach S3 endpoint {endpoint_url or 'AWS S3'} for {where}: {exc}") from None
    except ValueError as exc:  # botocore rejects malformed endpoint urls before connecting
        raise ConfigError(f"S3 endpoint url {endpoint_url!r}: {exc}") from None


def check_default_storage(workflow: Any, *, timeout: float = 10) -> None:
    """Pre-flight for `--default-storage-provider s3`, called from common.smk at parse time.

    Reads Snakemake's own settings (workflow.storage_settings and the s3 plugin's settings
    object, where CLI options, profile keys and SNAKEMAKE_STORAGE_S3_* variables end up). Runs
    only in the main process: remote jobs re-parse the Snakefile and need not re-check.
    """
    storage = getattr(workflow, "storage_settings", None)
    if storage is None or storage.default_storage_provider != "s3" or not workflow.is_main_process:
        return
    tagged = (workflow.storage_provider_settings or {}).get("s3")
    s3 = tagged.get_settings() if tagged is not None else None
    option = lambda name: getattr(s3, name, None)  # noqa: E731
    check_s3_access(storage.default_storage_prefix or "", endpoint_url=option("endpoint_url"),
                    access_key=option("access_key"), secret_key=option("secret_key"),
                    token=option("token"), region=option("region"), timeout=timeout)
