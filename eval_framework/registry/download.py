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

import contextlib
import errno
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eval_framework import cleanup, retry_policy
from eval_framework.errors import DownloadError, EvalFrameworkError, OutputError, brief
from eval_framework.registry.checkpoint_root import safe_join
from eval_framework.registry.dest_files import PART_HOST, sweep_stale_parts
from eval_framework.registry.manifest import (
    ByteSource,
    ManifestEntry,
    PartSized,
    Received,
    Sink,
    StalledError,
    StreamingSource,
    TransientError,
    check_algorithms,
    is_multipart,
    verify_file,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MiB = 1024 * 1024
#: Files at least this large are fetched as parallel byte ranges.
RANGED_THRESHOLD = 64 * MiB
PART_SIZE = 32 * MiB
#: Seconds; tests set it to 0.
RETRY_WAIT_MAX = 20.0


# ---- downloading ----------------------------------------------------------------------------


#: Tries of one read that stalled (no byte for the stall bound): the first, and one on a fresh
#: connection, so a silent store costs at most twice the bound, not ``attempts`` times it.
STALL_TRIES = 2


def _retrying(fn: Callable[[], _T], attempts: int) -> _T:
    """``fn`` under the retry policy: the sources raise ``TransientError`` for what another
    try can change (they classify their clients' errors), anything else is final."""
    policy = retry_policy.Policy(
        lambda exc: isinstance(exc, TransientError),
        attempts,
        RETRY_WAIT_MAX,
        first_wait=0.5,
        limits={StalledError: STALL_TRIES},
    )
    return retry_policy.call(fn, policy)


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
    tmp = target.with_name(f".{target.name}.part-{PART_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    cleanup.register(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _fill(fd, entry, source, (workers, attempts), report)
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


def _fill(
    fd: int, entry: ManifestEntry, source: ByteSource, limits: tuple[int, int], report: Callable[[int], None]
) -> None:
    """Write ``entry``'s bytes into ``fd``, range by range (``limits``: parallel ranges, attempts
    per range)."""
    workers, attempts = limits
    if entry.size:
        os.ftruncate(fd, entry.size)
    ranges = [(s, min(s + PART_SIZE, entry.size) - 1) for s in range(0, entry.size, PART_SIZE)]
    if entry.size < RANGED_THRESHOLD:
        ranges = [(0, entry.size - 1)] if entry.size else []

    def sink(offset: int, chunk: bytes) -> None:
        _stop_if_asked()  # between chunks: a stop is honoured at any link speed
        if offset + len(chunk) > entry.size:
            raise _changed(entry)
        os.pwrite(fd, chunk, offset)

    def write(span: tuple[int, int]) -> bool:
        """Fetch one range; True when the server sent the whole file instead."""
        got = _retrying(lambda: _stream(source, entry, span[0], span[1], sink), attempts)
        if got.start == 0 and got.count == entry.size:
            return True
        if got.start != span[0] or got.count != span[1] - span[0] + 1:
            raise _truncated(entry, got)
        report(got.count)
        return False

    # The first range alone: a server that ignores Range answers it with the whole file, and then
    # that one stream is the whole transfer.
    if ranges and write(ranges[0]):
        report(entry.size)
    elif len(ranges) > 2:
        _run_all(write, ranges[1:], workers)
    elif len(ranges) == 2:
        write(ranges[1])


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
            if threading.current_thread() is threading.main_thread():
                cleanup.raise_if_preempted()  # a preemption stops between files
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def download(  # noqa: PLR0913  (options are keyword-only)
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
