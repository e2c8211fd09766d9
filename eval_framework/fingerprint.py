"""Cheap, stable fingerprints of checkpoint directories for result identity."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Files up to this size are hashed in full (configs, tokenizers); larger ones by name and size.
FULL_HASH_LIMIT = 16 * 1024 * 1024


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def directory_fingerprint(root: Path) -> str:
    """sha256 over relative paths, sizes and, for small files, contents.

    Large weight files contribute name and size only: hashing tens of GB per evaluation would
    dominate start-up, and registry checkpoints carry their own digest.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if size <= FULL_HASH_LIMIT:
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()
