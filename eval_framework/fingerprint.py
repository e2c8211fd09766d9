"""Content fingerprints of checkpoint directories and data files, for result identity.

Every byte counts: two checkpoints of one architecture have weight files of identical names and
sizes, so anything less than the content would let one evaluation's results be reused for the
other. Hashing tens of GB on every run would dominate start-up, so a file's digest is cached under
the file's identity on disk (device, inode, size, modification and change times): any rewrite,
copy or replacement changes one of them, and the change time cannot be set back by tools that
preserve modification times (``cp -p``, ``rsync -a``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from eval_framework import env

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where file digests are cached: EVAL_FRAMEWORK_CACHE_DIR, else the user's cache directory."""
    configured = env.get("EVAL_FRAMEWORK_CACHE_DIR")
    if configured:
        return Path(configured).expanduser() / "fingerprints"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eval_framework" / "fingerprints"


def _uncached_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _cache_entry(path: Path, stat: os.stat_result) -> Path:
    fields = (path.resolve(), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    signature = "\0".join(str(f) for f in fields)
    name = hashlib.sha256(signature.encode()).hexdigest()[:40]
    return cache_dir() / name[:2] / name


def file_sha256(path: Path) -> str:
    """sha256 of a file's content, cached by the file's on-disk identity."""
    stat = path.stat()
    entry = _cache_entry(path, stat)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        cached = entry.read_text(encoding="ascii").strip()
        if len(cached) == 64:
            return cached
    value = _uncached_sha256(path)
    if path.stat().st_mtime_ns != stat.st_mtime_ns:  # changed while we read it: don't remember
        return value
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value)
        os.replace(tmp, entry)
    except OSError as exc:  # a read-only or full cache only costs time
        log.debug("cannot cache the digest of %s: %s", path, exc)
    return value


def directory_fingerprint(root: Path) -> str:
    """sha256 over the relative paths and content digests of every file below ``root`` (hidden
    files and directories, such as a lock or ``.cache``, are left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        digest.update(f"{rel}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()
