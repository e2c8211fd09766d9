"""Claim files: one watcher at a time evaluates a version, across machines sharing the output dir.

A claim is ``<dir>/<key>.json``, created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and
NFS v3+), holding who claimed it (host, pid, start time, a random token). Its modification time is
the heartbeat: the holder touches it every ``heartbeat_s``. A claim untouched for ``stale_s`` (or
left by a process of this host that is gone) belongs to a dead watcher and is taken over: under a
takeover lock (``<key>.json.takeover``, itself made with ``O_EXCL``) the taker checks that the
claim is still the stale one it judged and removes it; then every watcher tries ``O_EXCL`` again
and exactly one creates the new claim. Like the lock beside a bundle, a claim only avoids duplicate
work; results stay correct without it (bundles are written atomically and verified).

A failure record ``<key>.failed.json`` beside a claim counts the attempts at a version that failed,
so that watchers give up on a broken checkpoint instead of loading it on every poll.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval_framework.bundle_io import write_json

#: Environment variable: seconds without a heartbeat after which a claim is stale (default 120).
STALE_ENV = "EVAL_FRAMEWORK_CLAIM_STALE_S"
#: A claim is stale after this many seconds without a heartbeat; the holder beats 6 times as often,
#: which leaves room for NFS attribute caching (a minute at most by default) and small clock skew.
STALE_S = 120.0
BEATS_PER_STALE = 6
#: Looks at a claim before giving up for this poll (it keeps changing hands).
TRIES = 20


def stale_after() -> float:
    """The staleness limit: ``EVAL_FRAMEWORK_CLAIM_STALE_S`` when set (tests use a second), else
    ``STALE_S``."""
    text = os.environ.get(STALE_ENV, "").strip()
    try:
        value = float(text) if text else STALE_S
    except ValueError:
        value = STALE_S
    return value if value > 0 else STALE_S


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its file says."""

    host: str
    pid: int
    started: str  #: ISO time the claim was made
    token: str
    age_s: float  #: seconds since its last heartbeat

    @property
    def shown(self) -> str:
        if self.pid < 0:  # created, not yet written (or its writer died in between)
            return "another watcher (its claim is being written)"
        return f"host {self.host} (pid {self.pid}, since {self.started})"


def _read(path: Path) -> Holder | None:
    """The claim at ``path``; None when there is none. A claim that cannot be read (half written by
    a watcher that died between create and write) counts as held by nobody known, aged by its
    modification time."""
    try:
        stat = path.stat()
        data: Any = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = {}
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return Holder(
        host=str(data.get("host", "?")),
        pid=pid if isinstance(pid, int) else -1,
        started=str(data.get("started", "?")),
        token=str(data.get("token", "")),
        age_s=max(0.0, time.time() - stat.st_mtime),
    )


def _gone(pid: int) -> bool:
    """Whether process ``pid`` of this host no longer runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    return False


def is_stale(holder: Holder, stale_s: float) -> bool:
    """Dead: no heartbeat for ``stale_s``, or a process of this host that is gone and has missed
    two heartbeats (a live watcher in another pid namespace of the same host keeps beating)."""
    if holder.age_s >= stale_s:
        return True
    missed_two = holder.age_s >= 2 * stale_s / BEATS_PER_STALE
    return holder.host == socket.gethostname() and missed_two and _gone(holder.pid)


@dataclass
class Claim:
    """A claim this process holds: its heartbeat runs in a thread until ``release``."""

    path: Path
    token: str
    heartbeat_s: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    lost: bool = False  #: another watcher took it over (this one was thought dead)
    took_over: Holder | None = None  #: the dead watcher whose stale claim this one replaced

    def start(self) -> Claim:
        self._thread = threading.Thread(target=self._beat, name=f"claim {self.path.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.refresh():
                return

    def refresh(self) -> bool:
        """Touch the claim if it is still ours; False once another watcher's claim is in its place
        (missing for a moment: a watcher checking whether it is stale; it is put back)."""
        holder = _read(self.path)
        if holder is None:
            return True
        if holder.token != self.token:
            self.lost = True
            return False
        with contextlib.suppress(OSError):  # a missed beat is retried at the next one
            os.utime(self.path)
        return True

    def release(self) -> None:
        """Stop the heartbeat and remove the claim, if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        holder = _read(self.path)
        if holder is not None and holder.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ClaimStore:
    """The claims of one watched source: ``<output dir>/.claims/<source>/``."""

    def __init__(self, directory: Path, stale_s: float | None = None) -> None:
        self.directory = directory
        self.stale_s = stale_after() if stale_s is None else stale_s

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def holder(self, key: str) -> Holder | None:
        return _read(self.path(key))

    def try_claim(self, key: str) -> Claim | Holder:
        """Our claim on ``key`` (heartbeat started), or the live holder that has it. A stale claim
        is taken over; of several watchers racing for it, one gets it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        removed: Holder | None = None
        for _ in range(TRIES):  # a claim released or taken over while we looked: look again
            claim = self._create(path)
            if claim is not None:
                claim.took_over = removed
                return claim.start()
            holder = _read(path)
            if holder is None:
                continue
            if not is_stale(holder, self.stale_s):
                return holder
            removed = holder  # (whoever removes it, the claim we make replaces it)
            if not self._remove_stale(path, holder):
                time.sleep(0.05)  # another watcher is taking it over: see who gets it
        return _read(path) or Holder("?", -1, "?", "", 0.0)

    def _create(self, path: Path) -> Claim | None:
        token = uuid.uuid4().hex
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "token": token,
        }
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return Claim(path, token, self.stale_s / BEATS_PER_STALE)

    def _remove_stale(self, path: Path, judged: Holder) -> bool:
        """Remove the stale claim we judged, under a takeover lock (``O_EXCL``) so that no two
        watchers remove claims at once: the claim is read again under the lock and removed only if
        it is still that stale one (never a fresh claim made meanwhile); whoever then creates the
        claim first (``O_EXCL``) has it. False when another watcher is taking it over."""
        lock = path.with_name(f".{path.name}.takeover")
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - lock.stat().st_mtime >= self.stale_s:  # its taker died meanwhile
                    lock.unlink()
            return False
        try:
            current = _read(path)
            if current is not None and current.token == judged.token and is_stale(current, self.stale_s):
                path.unlink(missing_ok=True)
        finally:
            lock.unlink(missing_ok=True)
        return True

    # ---- failures -------------------------------------------------------------------------

    def failure_path(self, key: str) -> Path:
        return self.directory / f"{key}.failed.json"

    def failures(self, key: str, signature: str = "") -> int:
        """How many times ``key`` failed (for this content ``signature``: a local checkpoint that
        changed since starts again from 0)."""
        try:
            data = json.loads(self.failure_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(data, dict) or data.get("signature", "") != signature:
            return 0
        attempts = data.get("attempts")
        return attempts if isinstance(attempts, int) else 0

    def record_failure(self, key: str, error: str, signature: str = "") -> int:
        """Count one more failed attempt (written by the claim's holder only); returns the count."""
        attempts = self.failures(key, signature) + 1
        record = {
            "attempts": attempts,
            "error": error,
            "signature": signature,
            "host": socket.gethostname(),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(self.failure_path(key), record)
        return attempts

    def clear_failures(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.failure_path(key).unlink()
