"""Remove what a process was writing when it ends: normal exit, exception, SIGINT or SIGTERM.

Temporary checkpoint directories and in-flight ``.part`` files register here. SIGTERM (the
scheduler's stop signal) is turned into ``SystemExit`` after removing them and raising the
stop flag, so downloads in worker threads give up instead of finishing. SIGKILL cannot be
caught; leftovers carry recognisable names and are swept by the next download (part files of
dead processes on this host).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType

_registered: set[Path] = set()
_lock = threading.Lock()
_previous_sigterm: object = None
#: Set once SIGTERM arrived: long-running work checks it and stops.
stopping = threading.Event()


def register(path: Path) -> None:
    with _lock:
        _registered.add(path)


def unregister(path: Path) -> None:
    with _lock:
        _registered.discard(path)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_all() -> None:
    with _lock:
        paths = list(_registered)
        _registered.clear()
    for path in paths:
        remove(path)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stopping.set()
    remove_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    # Exit like an unhandled SIGTERM would (status 128 + 15), after cleaning up.
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> None:
    """Idempotent; only the main thread may set handlers (atexit still applies elsewhere)."""
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous_sigterm = current if current not in (signal.SIG_DFL, signal.SIG_IGN, None) else None
        signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(remove_all)
