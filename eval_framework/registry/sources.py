"""Byte sources for the downloader: S3 (boto3), signed HTTP URLs (W&B storage), file://."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from eval_framework import env
from eval_framework.errors import ConfigError, DownloadError, brief, missing_extra
from eval_framework.registry.manifest import (
    ManifestEntry,
    Received,
    Sink,
    StalledError,
    TransientError,
    file_ref_path,
)

_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}


def stall_timeout() -> float:
    """``EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC``: a bound on no progress, not on the whole transfer, so
    a large file on a slow but moving link is never cut off."""
    return float(env.get("EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC"))


#: Bytes per streamed chunk: small enough that a stop is seen within a second or two on a slow link.
CHUNK = 64 * 1024


def _content_range_total(value: str | None) -> int | None:
    """The object size from ``Content-Range: bytes a-b/total``."""
    if value and "/" in value:
        total = value.rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None
    return None


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
        stall = self._stall = stall_timeout()
        config = botocore.config.Config(
            retries={"max_attempts": 1},
            max_pool_connections=64,
            s3={"addressing_style": "path"},
            read_timeout=stall,
            connect_timeout=min(stall, 20.0),
        )
        self._client: Any = session.client("s3", endpoint_url=s3_endpoint(), config=config)
        self._lock = threading.Lock()

    def _object(self, entry: ManifestEntry) -> dict[str, Any]:
        assert entry.ref is not None
        parsed = urlparse(entry.ref)
        kwargs: dict[str, Any] = {"Bucket": parsed.netloc, "Key": unquote(parsed.path.lstrip("/"))}
        if entry.version_id:
            kwargs["VersionId"] = entry.version_id
        return kwargs

    def part_size(self, entry: ManifestEntry) -> int | None:
        """A multipart object's part size: the size of its part 1, as the store says."""
        try:
            head = self._client.head_object(**self._object(entry), PartNumber=1)
        except (self._errors.ClientError, self._errors.BotoCoreError):
            return None  # the guessed sizes are tried instead
        size = head.get("ContentLength")
        return int(size) if isinstance(size, int) and size > 0 else None

    def stream_range(self, entry: ManifestEntry, start: int, end: int, sink: Sink) -> Received:
        try:
            response = self._client.get_object(**self._object(entry), Range=f"bytes={start}-{end}")
            total = _content_range_total(response.get("ContentRange"))
            first = start if response.get("ContentRange") else 0
            count = 0
            for chunk in response["Body"].iter_chunks(CHUNK):
                sink(first + count, chunk)
                count += len(chunk)
            return Received(first, count, total if total is not None else response.get("ContentLength"))
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
        except self._errors.ReadTimeoutError as exc:
            raise StalledError(f"S3 object {entry.ref}", self._stall) from exc
        except (self._errors.EndpointConnectionError, self._errors.ConnectionClosedError,
                self._errors.ResponseStreamingError) as exc:  # fmt: skip
            raise TransientError(f"cannot reach S3 for {entry.ref}: {brief(exc)}") from exc


class HttpSource:
    """Reads W&B-stored files from the signed URLs the manifest lists."""

    def __init__(self, stall: float | None = None) -> None:
        stall = self._stall = stall_timeout() if stall is None else stall
        # read: the longest wait for the next bytes of a response, i.e. no progress for that long
        timeout = httpx.Timeout(stall, connect=min(stall, 20.0))
        self._client = httpx.Client(timeout=timeout, follow_redirects=True)

    def stream_range(self, entry: ManifestEntry, start: int, end: int, sink: Sink) -> Received:
        if not entry.url:
            raise DownloadError(
                f"{entry.path}: the manifest gives no download URL; retry, or check the artifact"
            )
        try:
            with self._client.stream("GET", entry.url, headers={"Range": f"bytes={start}-{end}"}) as response:
                if response.status_code in _TRANSIENT_HTTP:
                    raise TransientError(f"{entry.path}: HTTP {response.status_code}")
                if response.status_code not in (200, 206):
                    raise DownloadError(
                        f"{entry.path}: storage answered HTTP {response.status_code}; "
                        "retry later, or check access to it"
                    )
                # 200 to a ranged request: the server ignored Range and sends the whole object
                first = start if response.status_code == 206 else 0
                count = 0
                for chunk in response.iter_bytes():
                    sink(first + count, chunk)
                    count += len(chunk)
                total = _content_range_total(response.headers.get("content-range"))
                return Received(first, count, total if response.status_code == 206 else count)
        except httpx.ReadTimeout as exc:
            raise StalledError(f"{entry.path} (W&B storage)", self._stall) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{entry.path}: {type(exc).__name__}") from exc


class FileSource:
    """``file://`` references on a shared filesystem (copied, for artifacts used elsewhere)."""

    def stream_range(self, entry: ManifestEntry, start: int, end: int, sink: Sink) -> Received:
        path = file_ref_path(entry)
        assert path is not None
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(start)
                count, left = 0, end - start + 1
                while left > 0 and (chunk := handle.read(min(CHUNK * 16, left))):
                    sink(start + count, chunk)
                    count += len(chunk)
                    left -= len(chunk)
                return Received(start, count, size)
        except FileNotFoundError as exc:
            raise DownloadError(
                f"referenced file {path} does not exist on this machine; run where it is mounted, or use the "
                "uploaded artifact"
            ) from exc
