"""Where checkpoints land: a persistent store (WANDB_ARTIFACT_DIR) or a temp dir that never leaks.

A temporary destination is removed when the process ends by any ordinary route: normal exit,
an exception, Ctrl-C (SIGINT) or SIGTERM (see ``cleanup``). SIGKILL cannot be caught; temp dirs
carry a recognisable prefix so an operator can clear leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from eval_framework import cleanup
from eval_framework.errors import ConfigError
from eval_framework.registry.reference import CheckpointRef

log = logging.getLogger(__name__)

TEMP_PREFIX = "eval-framework-ckpt-"


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
    cleanup.register(temp)
    cleanup.install_sigterm_handler()
    try:
        yield temp
    finally:
        cleanup.unregister(temp)
        cleanup.remove(temp)
