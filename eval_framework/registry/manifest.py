"""An artifact version's files as its manifest lists them, and checking a file against its entry.

W&B-stored files are checked with the algorithm the manifest names (MD5 or XXH128); S3
references with their ETag, multipart ETags computed with the store's own part size; ``file://``
references with their MD5. The transports' protocols live here too: a source reads byte ranges
of one entry, whole or streamed.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from eval_framework.errors import DownloadError

MiB = 1024 * 1024


class TransientError(Exception):
    """Worth retrying: throttling, 5xx, dropped connections."""


class StalledError(TransientError):
    """No byte arrived for the stall bound (``EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC``). Retried once,
    on a fresh connection: a store that stays silent twice is not waited on again."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(
            f"{what}: no data for {seconds:g} s "
            "(EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC; raise it for a slow store)"
        )


@dataclass(frozen=True)
class ManifestEntry:
    """One file of an artifact version, as its manifest describes it."""

    path: str
    size: int
    digest: str  #: base64 MD5 (W&B-stored), hex ETag (s3://), hex MD5 (file://)
    ref: str | None = None  #: s3://bucket/key or file:///abs for reference artifacts
    url: str | None = None  #: signed URL for W&B-stored files
    version_id: str | None = None  #: S3 object version pinned by the manifest
    algorithm: str = "MD5"  #: the digest algorithm of a W&B-stored file (the manifest's ``extra.alg``)

    @property
    def scheme(self) -> str:
        if self.ref:
            return self.ref.split("://", 1)[0]
        return "wandb"


@dataclass(frozen=True)
class Received:
    """What one streamed request delivered."""

    start: int  #: offset of the first byte sent (0 when a server ignored the Range and sent it all)
    count: int  #: bytes sent
    object_size: int | None = None  #: the stored object's size, where the store said it


#: Chunk handler: (offset in the file, bytes).
Sink = Callable[[int, bytes], None]


@runtime_checkable
class RangeReader(Protocol):
    """A source that returns a range whole (simple ones, such as a test's in-memory files)."""

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        """Bytes ``[start, end]`` inclusive."""
        ...


@runtime_checkable
class StreamingSource(Protocol):
    """A source that streams a range in chunks (the real transports): the downloader checks for a
    stop between chunks, and learns when a server ignored the Range."""

    def stream_range(self, entry: ManifestEntry, start: int, end: int, sink: Sink) -> Received: ...


@runtime_checkable
class PartSized(Protocol):
    def part_size(self, entry: ManifestEntry) -> int | None:
        """The first part's size of a multipart object, as the store says (S3 ``PartNumber=1``)."""
        ...


#: Reads byte ranges of one entry (one per transport).
ByteSource = RangeReader | StreamingSource


# ---- verification ---------------------------------------------------------------------------


def _md5_hex(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


#: Part sizes uploaders commonly use (boto3 and the AWS CLI default to 8 MiB).
_COMMON_PART_SIZES = (5, 8, 10, 15, 16, 32, 50, 64, 100, 128, 256, 512)


@dataclass
class _PartHasher:
    size: int
    current: Any = field(default_factory=hashlib.md5)
    filled: int = 0
    parts: list[bytes] = field(default_factory=list)

    def update(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            take = min(len(view), self.size - self.filled)
            self.current.update(view[:take])
            self.filled += take
            view = view[take:]
            if self.filled == self.size:
                self.parts.append(self.current.digest())
                self.current, self.filled = hashlib.md5(), 0

    def etag(self) -> str:
        parts = self.parts + ([self.current.digest()] if self.filled else [])
        return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def _multipart_etags(path: Path, part_sizes: Sequence[int]) -> set[str]:
    """The multipart ETag for each candidate part size, computed in one pass over the file."""
    hashers = [_PartHasher(size) for size in part_sizes]
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            for hasher in hashers:
                hasher.update(block)
    return {h.etag() for h in hashers}


def is_multipart(entry: ManifestEntry) -> bool:
    return entry.scheme == "s3" and "-" in entry.digest.strip('"')


def _etag_matches(path: Path, etag: str, size: int, part_size: int | None = None) -> bool:
    etag = etag.strip('"')
    if "-" not in etag:
        return _md5_hex(path) == etag
    # Multipart ETag: md5 of the parts' md5s plus the part count. The manifest does not record the
    # part size: the store's own answer is used where known, else the whole-MiB sizes that give
    # this part count.
    count = int(etag.rpartition("-")[2])
    if part_size:
        candidates = {part_size}
    else:
        derived = math.ceil(math.ceil(size / count) / MiB) * MiB
        candidates = {derived, *(n * MiB for n in _COMMON_PART_SIZES)}
    fitting = sorted(p for p in candidates if p > 0 and math.ceil(size / p) == count)
    return bool(fitting) and etag in _multipart_etags(path, fitting)


#: Digest algorithms a W&B-stored file may name (``extra.alg``); untagged entries are MD5.
ALGORITHMS = ("MD5", "XXH128")


def _xxh128_b64(path: Path) -> str:
    import xxhash  # a dependency of the wandb SDK, which wrote the manifest

    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, xxhash.xxh128)
    return base64.b64encode(digest.digest()).decode()


def check_algorithms(entries: Sequence[ManifestEntry]) -> None:
    """Refuse, by name, a digest algorithm this release cannot verify."""
    unknown = sorted({e.algorithm for e in entries if e.algorithm not in ALGORITHMS})
    if unknown:
        first = next(e.path for e in entries if e.algorithm in unknown)
        raise DownloadError(
            f"the manifest names digest algorithm {', '.join(unknown)} (e.g. for {first}), which this "
            f"eval_framework cannot verify (it knows {', '.join(ALGORITHMS)}); upgrade eval_framework, or "
            "log the artifact with digest_algorithm MD5 or XXH128"
        )


_HEX_MD5 = re.compile(r"^[0-9a-f]{32}$")


def file_ref_path(entry: ManifestEntry) -> Path | None:
    """The local path of a ``file://`` reference."""
    if not entry.ref or not entry.ref.startswith("file://"):
        return None
    return Path(unquote(urlparse(entry.ref).path))


def digest_is_of_uri(entry: ManifestEntry) -> bool:
    """A ``file://`` reference added with ``checksum=False`` (usual for large checkpoints) records
    the MD5 of the file's URI, not of its content: only its size says anything about the file."""
    path = file_ref_path(entry)
    if path is None:
        return False
    uris = {path.as_uri(), path.resolve().as_uri()}
    return entry.digest in {base64.b64encode(hashlib.md5(uri.encode()).digest()).decode() for uri in uris}


def content_digest(entry: ManifestEntry) -> tuple[str, str] | None:
    """The entry's content digest as (algorithm, hex), or None when its digest is not one of the
    content (a multipart ETag, a file:// reference added without checksums)."""
    if entry.scheme == "wandb" and entry.algorithm != "MD5":
        try:
            raw = base64.b64decode(entry.digest, validate=True)
        except ValueError:
            return None
        return (entry.algorithm, raw.hex())
    md5 = content_md5(entry)
    return ("MD5", md5) if md5 is not None else None


def content_md5(entry: ManifestEntry) -> str | None:
    """The entry's content MD5 as hex, from whichever form its digest takes (base64 for W&B-stored
    files, hex or base64 for file://, the ETag of a single-part S3 object); None when the digest
    is not an MD5 of the content (a multipart ETag)."""
    if digest_is_of_uri(entry):
        return None
    digest = entry.digest.strip('"') if entry.scheme == "s3" else entry.digest
    if _HEX_MD5.match(digest.lower()):
        return digest.lower()
    if entry.scheme == "s3" or entry.algorithm != "MD5":
        return None
    try:
        raw = base64.b64decode(digest, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 16 else None


def same_contents(a: Sequence[ManifestEntry], b: Sequence[ManifestEntry]) -> bool:
    """Whether two versions hold the same files (path, size, content digest), wherever each keeps
    them. Files hashed with different algorithms cannot be compared: not the same."""

    def files(entries: Sequence[ManifestEntry]) -> dict[str, tuple[int, tuple[str, str] | None]]:
        return {e.path: (e.size, content_digest(e)) for e in entries}

    ours = files(a)
    return bool(ours) and ours == files(b) and all(d is not None for _, d in ours.values())


def verify_file(path: Path, entry: ManifestEntry, part_size: int | None = None) -> bool:
    """Size first (cheap), then the manifest digest with the algorithm it names. ``part_size``: a
    multipart S3 object's part size, as the store gave it."""
    try:
        if path.stat().st_size != entry.size:
            return False
    except FileNotFoundError:
        return False
    if entry.scheme == "s3":
        return _etag_matches(path, entry.digest, entry.size, part_size)
    if digest_is_of_uri(entry):
        return True  # the size matched; the digest says nothing about the content
    if entry.scheme == "wandb" and entry.algorithm != "MD5":
        check_algorithms([entry])
        return _xxh128_b64(path) == entry.digest
    md5 = _md5_hex(path)
    if entry.scheme == "file":
        return md5 == entry.digest or base64.b64encode(bytes.fromhex(md5)).decode() == entry.digest
    return base64.b64encode(bytes.fromhex(md5)).decode() == entry.digest
