"""Byte sources for the downloader: S3 (boto3), signed HTTP URLs (W&B storage), file://."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from eval_framework.errors import ConfigError, brief, missing_extra
from eval_framework.registry.download import DownloadError, ManifestEntry, TransientError, file_ref_path

_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}


def s3_endpoint() -> str | None:
    """``AWS_ENDPOINT_URL`` (or the SDK's ``AWS_S3_ENDPOINT_URL``); a bare host gets https://."""
    raw = os.environ.get("AWS_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if not raw:
        return None
    return raw if "://" in raw else f"https://{raw}"


class S3Source:
    """Reads ``s3://bucket/key`` references at the version the manifest pinned."""

    def __init__(self) -> None:
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:
            raise missing_extra("boto3", "s3", ConfigError) from exc
        self._errors = botocore.exceptions
        session = boto3.session.Session()
        if session.get_credentials() is None:
            missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
            raise ConfigError(
                "this checkpoint references files in S3 but no AWS credentials were found; set "
                f"{' and '.join(missing) or 'AWS credentials'} (in the environment or .env), and "
                "AWS_ENDPOINT_URL for an S3-compatible store"
            )
        config = botocore.config.Config(
            retries={"max_attempts": 1}, max_pool_connections=64, s3={"addressing_style": "path"}
        )
        self._client: Any = session.client("s3", endpoint_url=s3_endpoint(), config=config)
        self._lock = threading.Lock()

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        assert entry.ref is not None
        parsed = urlparse(entry.ref)
        bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end}"}
        if entry.version_id:
            kwargs["VersionId"] = entry.version_id
        try:
            response = self._client.get_object(**kwargs)
            data: bytes = response["Body"].read()
            return data
        except self._errors.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = exc.response.get("Error", {}).get("Code", "")
            if status in _TRANSIENT_HTTP or code in ("SlowDown", "Throttling", "RequestTimeout"):
                raise TransientError(f"S3 {code or status} for {entry.ref}") from exc
            if status == 403 or code == "AccessDenied":
                raise DownloadError(
                    f"S3 denied access to {entry.ref} (403); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
                    "and the bucket policy"
                ) from exc
            if status == 404 or code in ("NoSuchKey", "NoSuchVersion", "NoSuchBucket"):
                pinned = f" version {entry.version_id}" if entry.version_id else ""
                raise DownloadError(
                    f"S3 object {entry.ref}{pinned} not found ({code or 404}): it was deleted or replaced "
                    "since the artifact referenced it; re-register the checkpoint"
                ) from exc
            raise DownloadError(
                f"S3 error for {entry.ref}: {code or status}; check the object and the AWS credentials"
            ) from exc
        except (self._errors.EndpointConnectionError, self._errors.ConnectionClosedError,
                self._errors.ReadTimeoutError) as exc:  # fmt: skip
            raise TransientError(f"cannot reach S3 for {entry.ref}: {brief(exc)}") from exc


class HttpSource:
    """Reads W&B-stored files from the signed URLs the manifest lists."""

    def __init__(self, timeout: float = 60.0) -> None:
        self._client = httpx.Client(timeout=timeout, follow_redirects=True)

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        if not entry.url:
            raise DownloadError(
                f"{entry.path}: the manifest gives no download URL; retry, or check the artifact"
            )
        try:
            response = self._client.get(entry.url, headers={"Range": f"bytes={start}-{end}"})
        except httpx.TransportError as exc:
            raise TransientError(f"{entry.path}: {type(exc).__name__}") from exc
        if response.status_code in _TRANSIENT_HTTP:
            raise TransientError(f"{entry.path}: HTTP {response.status_code}")
        if response.status_code == 200 and (start, end) != (0, entry.size - 1):
            return response.content[start : end + 1]  # server ignored Range
        if response.status_code not in (200, 206):
            raise DownloadError(
                f"{entry.path}: storage answered HTTP {response.status_code}; "
                "retry later, or check access to it"
            )
        return response.content


class FileSource:
    """``file://`` references on a shared filesystem (copied, for artifacts used elsewhere)."""

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        path = file_ref_path(entry)
        assert path is not None
        try:
            with path.open("rb") as handle:
                handle.seek(start)
                return handle.read(end - start + 1)
        except FileNotFoundError as exc:
            raise DownloadError(
                f"referenced file {path} does not exist on this machine; run where it is mounted, or use the "
                "uploaded artifact"
            ) from exc
