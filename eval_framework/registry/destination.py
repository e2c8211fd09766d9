"""Where checkpoints land: a persistent store (WANDB_ARTIFACT_DIR) or a temp dir that never leaks.

A temporary destination is removed when the process ends by any ordinary route: normal exit,
an exception, Ctrl-C (SIGINT) or SIGTERM (see ``cleanup``). SIGKILL cannot be caught; temp dirs
carry a recognisable prefix so an operator can clear leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from eval_framework import cleanup, env
from eval_framework.errors import ConfigError

log = logging.getLogger(__name__)

TEMP_PREFIX = "eval-framework-ckpt-"


class Resolved(Protocol):
    @property
    def qualified_name(self) -> str: ...  # org-entity/project/collection:vN

    @property
    def digest(self) -> str: ...


def version_dirname(identity: Resolved) -> str:
    """The folder of one resolved version in the persistent store: by what the server resolved
    (entity, project, collection, version, digest), never by how the reference was spelled, so
    ``tiny:prod`` and ``acme/wandb-registry-model/tiny:v1`` share one copy, and a version with other
    contents (another server, a re-created registry) never shares a folder with it."""
    path, _, version = identity.qualified_name.rpartition(":")
    parts = [*path.split("/"), f"{version}-{identity.digest[:16]}"]
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts)


def persistent_root(explicit: Path | None = None) -> Path | None:
    """``--artifact-dir`` or ``WANDB_ARTIFACT_DIR``, or None for a temporary destination."""
    raw = str(explicit) if explicit is not None else (env.get("WANDB_ARTIFACT_DIR") or "")
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
def checkpoint_destination(identity: Resolved, explicit: Path | None = None) -> Iterator[Path]:
    """Yield the directory a version should be placed in; temporary ones are removed afterwards."""
    root = persistent_root(explicit)
    if root is not None:
        target = root / version_dirname(identity)
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    cleanup.register(temp)
    try:
        yield temp
    finally:
        cleanup.unregister(temp)
        cleanup.remove(temp)
