"""Which commit a Hugging Face Hub model id stands for right now.

A hub id without a pinned commit (``org/model`` or a branch) moves when the owner pushes; the
commit it resolves to belongs in the result identity, or results of yesterday's weights would be
reused for today's. Offline (``HF_HUB_OFFLINE=1``) transformers loads what the local cache's ref
points at, so that is what is read then; online the Hub is asked, as transformers will ask.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit sha ``repo_id`` at ``revision`` (default branch when None) resolves to, or None
    when it cannot be known (not cached offline, hub library missing, hub unreachable)."""
    if revision and _COMMIT.match(revision):
        return revision
    try:
        from huggingface_hub import HfApi, constants
    except ImportError:
        return None
    if not constants.HF_HUB_OFFLINE:
        try:
            return str(HfApi().model_info(repo_id, revision=revision, timeout=30).sha)
        except Exception as exc:  # the load reports reachability; the cache may still know  # noqa: BLE001
            log.debug("cannot ask the Hub for the commit of %s: %s", repo_id, exc)
    ref = (
        Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
    )
    try:
        value = ref.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if _COMMIT.match(value) else None
