"""Files in a download destination that are not the manifest's: part files left by killed
processes, and files an earlier version (or a hand) put there."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

from eval_framework.registry.checkpoint_root import safe_join
from eval_framework.registry.manifest import ManifestEntry

log = logging.getLogger(__name__)

#: This host in part-file names: only its own dead processes' part files are swept.
PART_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
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
        if match and match["host"] == PART_HOST and not _alive(int(match["pid"])):
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
