"""The W&B SDK's own file cache, for ``WANDB_CACHE_SKIP=false``: find and evict an entry whose
bytes do not match the manifest, so the next download fetches them anew instead of serving the
same corrupt copy forever."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from eval_framework.registry.manifest import ManifestEntry

log = logging.getLogger(__name__)


def cached_path(entry: ManifestEntry) -> Path | None:
    """Where the SDK caches this entry's bytes, or None when it does not (or would not say)."""
    from wandb.sdk.artifacts.artifact_file_cache import artifacts_cache_dir, get_artifact_file_cache
    from wandb.sdk.artifacts.artifact_manifest_entry import _STR_TO_DIGEST_ALGORITHM

    cache = get_artifact_file_cache()
    if entry.ref and entry.ref.startswith("s3://"):
        raw, _, _ = cache.check_etag_obj_path(entry.ref, entry.digest, entry.size)
    elif not entry.ref:
        algorithm = _STR_TO_DIGEST_ALGORITHM.get(entry.algorithm)
        if algorithm is None:
            return None
        raw, _, _ = cache.check_digest_obj_path(entry.digest, entry.size, algorithm)
    else:
        return None
    path = Path(raw)
    # The SDK can return a process-wide override instead of a cache path: never touch that.
    return path if path.is_relative_to(Path(artifacts_cache_dir()) / "obj") else None


def evict(entry: ManifestEntry) -> bool:
    path = cached_path(entry)
    if path is None or not path.is_file():
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    log.warning("removed %s from the W&B cache: its bytes do not match the manifest", entry.path)
    return True
