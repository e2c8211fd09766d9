"""Cache-free, verified downloads of artifact files straight into their destination.

The wandb SDK's own ``skip_cache=True`` path is unsafe in the pinned release (a process-wide
destination override), so files are fetched here: each into a temp file beside its target,
verified against the manifest (MD5 or XXH128, as the manifest names, for W&B-stored files; the
ETag, multipart ETags with the store's own part size, and version id for S3 references), then
moved into place with ``os.replace``. A file already at its target counts only after it
verifies. Several processes may fill the same directory at once: every file they publish is
complete and verified, so correctness never depends on a lock. Bytes are streamed in small
chunks, so a stop (SIGTERM) is honoured within a chunk at any link speed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import math
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlparse

from eval_framework import cleanup, retry_policy
from eval_framework.errors import DownloadError, EvalFrameworkError, OutputError, brief
from eval_framework.registry.checkpoint_root import safe_join

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MiB = 1024 * 1024
#: Files at least this large are fetched as parallel byte ranges.
RANGED_THRESHOLD = 64 * MiB
PART_SIZE = 32 * MiB
#: Seconds; tests set it to 0.
RETRY_WAIT_MAX = 20.0


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
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


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

    digest = xxhash.xxh128()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
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


# ---- downloading ----------------------------------------------------------------------------


#: Tries of one read that stalled (no byte for the stall bound): the first, and one on a fresh
#: connection, so a silent store costs at most twice the bound, not ``attempts`` times it.
STALL_TRIES = 2


def _retrying(fn: Callable[[], _T], attempts: int) -> _T:
    """``fn`` under the retry policy: the sources raise ``TransientError`` for what another
    try can change (they classify their clients' errors), anything else is final."""
    return retry_policy.call(
        fn,
        transient=lambda exc: isinstance(exc, TransientError),
        attempts=attempts,
        wait_max=RETRY_WAIT_MAX,
        first_wait=0.5,
        limits={StalledError: STALL_TRIES},
    )


@dataclass
class DownloadPlan:
    todo: list[ManifestEntry]
    done: list[ManifestEntry]

    @property
    def bytes_needed(self) -> int:
        return sum(e.size for e in self.todo)


def plan_download(entries: Sequence[ManifestEntry], dest: Path) -> DownloadPlan:
    """Which files still need fetching; present files count only once they verify."""
    todo: list[ManifestEntry] = []
    done: list[ManifestEntry] = []
    for entry in entries:
        target = safe_join(dest, entry.path)
        (done if verify_file(target, entry) else todo).append(entry)
    return DownloadPlan(todo, done)


def _check_space(dest: Path, needed: int) -> None:
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise OutputError(
            f"not enough disk space in {dest}: the checkpoint needs {needed / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB are free; free space or set WANDB_ARTIFACT_DIR to a larger disk"
        )


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_PART = re.compile(r"^\..+\.part-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_parts(dest: Path) -> int:
    """Remove part files left by killed processes of this host (SIGKILL, power loss). Other
    hosts' part files are left alone: on a shared filesystem their pids mean nothing here."""
    removed = 0
    for path in dest.rglob(".*.part-*"):
        match = _PART.match(path.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def remove_extra_files(dest: Path, entries: Sequence[ManifestEntry]) -> list[str]:
    """Remove what ``dest`` holds besides the manifest's files (a file an earlier version had, a
    file put there by hand): transformers would load a stale ``model.safetensors`` beside new
    shards. Part files of downloads in flight are left to their owners. Returns what was removed."""
    wanted = {safe_join(dest, e.path) for e in entries}
    removed = []
    for path in sorted(dest.rglob("*"), reverse=True):  # children before their folders
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty
        elif path not in wanted and not _PART.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.relative_to(dest).as_posix())
    if removed:
        log.info(
            "removed %d file(s) not in the manifest from %s: %s", len(removed), dest, ", ".join(removed[:5])
        )
    return removed


def _stop_if_asked() -> None:
    if cleanup.stopping.is_set():
        raise SystemExit(143)  # SIGTERM arrived: workers stop instead of finishing the download


def _stream(source: ByteSource, entry: ManifestEntry, start: int, end: int, sink: Sink) -> Received:
    """One request for bytes ``[start, end]``, streamed into ``sink`` where the source can."""
    if isinstance(source, StreamingSource):
        return source.stream_range(entry, start, end, sink)
    data = source.read_range(entry, start, end)
    sink(start, data)
    return Received(start, len(data))


def _changed(entry: ManifestEntry) -> DownloadError:
    return DownloadError(
        f"{entry.path}: digest mismatch, the stored object changed since the artifact referenced it "
        f"({entry.ref or 'W&B storage'}); re-register the checkpoint or restore the object"
    )


def _truncated(entry: ManifestEntry, got: Received) -> DownloadError:
    held = got.object_size if got.object_size is not None else got.start + got.count
    where = entry.ref or "W&B storage"
    return DownloadError(
        f"{entry.path}: the stored object is truncated: it ends after {held} of the {entry.size} bytes the "
        f"manifest lists ({where}); re-register the checkpoint or restore the object"
    )


def _part_size(source: ByteSource, entry: ManifestEntry) -> int | None:
    if not is_multipart(entry) or not isinstance(source, PartSized):
        return None
    return source.part_size(entry)


def _fetch_one(
    entry: ManifestEntry,
    dest: Path,
    source: ByteSource,
    workers: int,
    attempts: int,
    report: Callable[[int], None] = lambda _: None,
) -> None:
    """Fetch, verify and publish one file; ``report`` gets each range's size once it is written
    (after any retries, so nothing is counted twice)."""
    _stop_if_asked()
    target = safe_join(dest, entry.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    cleanup.register(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if entry.size:
                os.ftruncate(fd, entry.size)
            ranges = [(s, min(s + PART_SIZE, entry.size) - 1) for s in range(0, entry.size, PART_SIZE)]
            if entry.size < RANGED_THRESHOLD:
                ranges = [(0, entry.size - 1)] if entry.size else []

            def write(span: tuple[int, int]) -> bool:
                """Fetch one range; True when the server sent the whole file instead."""

                def sink(offset: int, chunk: bytes) -> None:
                    _stop_if_asked()  # between chunks: a stop is honoured at any link speed
                    if offset + len(chunk) > entry.size:
                        raise _changed(entry)
                    os.pwrite(fd, chunk, offset)

                got = _retrying(lambda: _stream(source, entry, span[0], span[1], sink), attempts)
                if got.start == 0 and got.count == entry.size:
                    return True
                if got.start != span[0] or got.count != span[1] - span[0] + 1:
                    raise _truncated(entry, got)
                report(got.count)
                return False

            # The first range alone: a server that ignores Range answers it with the whole file,
            # and then that one stream is the whole transfer.
            if ranges and write(ranges[0]):
                report(entry.size)
            elif len(ranges) > 2:
                _run_all(write, ranges[1:], workers)
            elif len(ranges) == 2:
                write(ranges[1])
            os.fsync(fd)
        finally:
            os.close(fd)
        _stop_if_asked()
        if not verify_file(tmp, entry, _part_size(source, entry)):
            raise _changed(entry)
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(
                f"disk full while downloading {entry.path} into {dest} ({entry.size / 1e9:.2f} GB for this "
                "file); partial files were removed; free space or set WANDB_ARTIFACT_DIR to a larger disk"
            ) from exc
        raise
    finally:
        cleanup.unregister(tmp)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _recheck_multipart(plan: DownloadPlan, dest: Path, sources: Mapping[str, ByteSource]) -> None:
    """A present multipart S3 object uploaded with an unusual part size fails the guessed sizes:
    check it again with the part size the store gives before fetching it anew."""
    for entry in [e for e in plan.todo if is_multipart(e)]:
        target = safe_join(dest, entry.path)
        present = target.is_file() and target.stat().st_size == entry.size
        if present and verify_file(target, entry, _part_size(sources[entry.scheme], entry)):
            plan.todo.remove(entry)
            plan.done.append(entry)


def _run_all(fn: Callable[[Any], object], items: Sequence[Any], workers: int) -> None:
    """``pool.map`` that, on the first failure (or SIGTERM), drops the queued work instead of
    running it to the end before re-raising."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def download(
    entries: Sequence[ManifestEntry],
    dest: Path,
    sources: Mapping[str, ByteSource] | Callable[[list[ManifestEntry]], Mapping[str, ByteSource]],
    *,
    workers: int = 16,
    attempts: int = 5,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> DownloadPlan:
    """Fetch what is missing or wrong into ``dest``; returns the plan that was carried out.

    ``on_total`` gets the plan's ``bytes_needed`` once, before anything is fetched; ``progress``
    then gets byte increments as ranges are written, summing to exactly that total on success.
    Calls to ``progress`` are serialised, so it need not be thread-safe.
    """
    check_algorithms(entries)
    dest.mkdir(parents=True, exist_ok=True)
    sweep_stale_parts(dest)
    plan = plan_download(entries, dest)
    if callable(sources):  # built from what is missing: S3 credentials only when S3 files are
        sources = sources(plan.todo)
    missing = {e.scheme for e in plan.todo} - set(sources)
    if missing:
        raise DownloadError(f"no way to fetch {', '.join(sorted(missing))} entries")
    _recheck_multipart(plan, dest, sources)
    _check_space(dest, plan.bytes_needed)
    if on_total:
        on_total(plan.bytes_needed)
    lock = threading.Lock()

    def report(nbytes: int) -> None:
        if progress:
            with lock:  # ranges complete on several worker threads at once
                progress(nbytes)

    def one(entry: ManifestEntry) -> None:
        _fetch_one(entry, dest, sources[entry.scheme], max(1, workers // 4), attempts, report)

    small = [e for e in plan.todo if e.size < RANGED_THRESHOLD]
    large = [e for e in plan.todo if e.size >= RANGED_THRESHOLD]
    try:
        _run_all(one, small, workers)
        for entry in large:  # ranges of one large file at a time keep memory and disk writes steady
            _fetch_one(entry, dest, sources[entry.scheme], workers, attempts, report)
    except EvalFrameworkError:
        raise
    except StalledError as exc:
        raise DownloadError(f"download stalled: {exc}; check the network and the store, then retry") from exc
    except TransientError as exc:
        raise DownloadError(
            f"download kept failing after {attempts} tries: {brief(exc)}; check the network and retry"
        ) from exc
    return plan
