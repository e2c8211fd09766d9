"""Where checkpoints land: a persistent store (WANDB_ARTIFACT_DIR) or a temp dir that never leaks.

A temporary destination is removed when the process ends by any ordinary route: normal exit,
an exception, Ctrl-C (SIGINT) or SIGTERM (the scheduler's stop signal). SIGKILL cannot be caught;
temp dirs carry a recognisable prefix so an operator can clear leftovers.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from eval_framework.errors import ConfigError
from eval_framework.registry.reference import CheckpointRef

log = logging.getLogger(__name__)

TEMP_PREFIX = "eval-framework-ckpt-"
_registered: set[Path] = set()
_lock = threading.Lock()
_previous_sigterm: object = None


def _remove_all() -> None:
    with _lock:
        paths = list(_registered)
        _registered.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _remove_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    # Exit like an unhandled SIGTERM would (status 128 + 15), after cleaning up.
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still applies
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous_sigterm = current if current not in (signal.SIG_DFL, signal.SIG_IGN, None) else None
        signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(_remove_all)


def version_dirname(ref: CheckpointRef, version: str) -> str:
    """Stable folder name for one resolved version inside the persistent store."""
    parts = [ref.entity or "_default", ref.project, ref.name, version]
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts)


def persistent_root(explicit: Path | None = None) -> Path | None:
    """``--artifact-dir`` or ``WANDB_ARTIFACT_DIR``, or None for a temporary destination."""
    raw = str(explicit) if explicit is not None else os.environ.get("WANDB_ARTIFACT_DIR", "").strip()
    if not raw:
        return None
    root = Path(raw).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create WANDB_ARTIFACT_DIR / --artifact-dir {root}: {exc.strerror}; "
            "choose a writable directory"
        ) from exc
    return root


@contextlib.contextmanager
def checkpoint_destination(ref: CheckpointRef, version: str, explicit: Path | None = None) -> Iterator[Path]:
    """Yield the directory a version should be placed in; temporary ones are removed afterwards."""
    root = persistent_root(explicit)
    if root is not None:
        target = root / version_dirname(ref, version)
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    with _lock:
        _registered.add(temp)
    _install_handlers()
    try:
        yield temp
    finally:
        with _lock:
            _registered.discard(temp)
        shutil.rmtree(temp, ignore_errors=True)
