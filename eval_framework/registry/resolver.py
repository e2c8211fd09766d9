"""Resolve a checkpoint reference to a local Hugging Face checkpoint directory.

reference ─parse─► CheckpointRef ─► '-local' twin here? ─yes─► use its files in place
                                        │ twin exists, files missing: wait for the upload
                                        ▼
                 registry version ─► manifest ─► verified, cache-free download ─► HF root
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from eval_framework.config import env_flag
from eval_framework.registry.checkpoint_root import find_checkpoint_root
from eval_framework.registry.destination import (
    TEMP_PREFIX,
    checkpoint_destination,
    persistent_root,
    version_dirname,
)
from eval_framework.registry.download import ByteSource, ManifestEntry, download, plan_download
from eval_framework.registry.local_twin import check_twin, in_place_root, wait_timeout, wait_until
from eval_framework.registry.reference import DEFAULT_REGISTRY, CheckpointRef, parse_reference
from eval_framework.registry.wandb_client import ArtifactIdentity, WandbRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolveOptions:
    artifact_dir: Path | None = None  #: else WANDB_ARTIFACT_DIR, else a temporary directory
    checkpoint_subdir: str | None = None
    cache_skip: bool | None = None  #: else WANDB_CACHE_SKIP (default true)
    default_registry: str = DEFAULT_REGISTRY


@dataclass(frozen=True)
class ResolvedCheckpoint:
    path: Path  #: the Hugging Face checkpoint root to load
    reference: str  #: the reference as resolved (with alias)
    identity: ArtifactIdentity
    in_place: bool  #: files of the '-local' twin were used where they are
    destination: Path
    downloaded_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "reference": self.reference, "in_place": self.in_place,
                "destination": str(self.destination), "downloaded_bytes": self.downloaded_bytes,
                **self.identity.as_dict()}  # fmt: skip


@dataclass
class ResolvePlan:
    """What ``--dry-run`` shows: the version, its files, and what would be fetched where."""

    reference: str
    identity: ArtifactIdentity
    destination: str
    files: list[ManifestEntry] = field(default_factory=list)
    to_fetch: list[ManifestEntry] = field(default_factory=list)
    in_place: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "destination": self.destination, "in_place": self.in_place,
            "files": len(self.files), "bytes": sum(e.size for e in self.files),
            "files_to_fetch": [e.path for e in self.to_fetch],
            "bytes_to_fetch": sum(e.size for e in self.to_fetch),
            **self.identity.as_dict(),
        }  # fmt: skip


def _sources(entries: list[ManifestEntry]) -> dict[str, ByteSource]:
    from eval_framework.registry.sources import FileSource, HttpSource, S3Source

    schemes = {e.scheme for e in entries}
    sources: dict[str, ByteSource] = {}
    if "wandb" in schemes:
        sources["wandb"] = HttpSource()
    if "s3" in schemes:  # credentials are needed only when the artifact holds s3:// entries
        sources["s3"] = S3Source()
    if "file" in schemes:
        sources["file"] = FileSource()
    return sources


class Resolver:
    def __init__(self, client: WandbRegistry | None = None, options: ResolveOptions | None = None) -> None:
        self.options = options or ResolveOptions()
        self._client = client

    @property
    def client(self) -> WandbRegistry:
        if self._client is None:
            self._client = WandbRegistry()
        return self._client

    def parse(self, text: str) -> CheckpointRef:
        return parse_reference(text, self.options.default_registry)

    def _usable_twin(self, ref: CheckpointRef) -> tuple[Any, list[ManifestEntry]] | None:
        """The twin and its entries when all its files are here; waits for the upload otherwise."""
        twin = ref.local_twin()
        if not self.client.exists(twin):
            return None
        artifact = self.client.artifact(twin)
        entries = self.client.entries(artifact, twin)
        check = check_twin(entries)
        if check.usable:
            return artifact, entries
        log.warning("%s exists but not all its files are here (%s); waiting for %s",
                    twin, "; ".join(check.problems[:3]), ref)  # fmt: skip
        wait_until(lambda: self.client.exists(ref), ref.path, wait_timeout())
        return None

    def plan(self, text: str) -> ResolvePlan:
        ref = self.parse(text)
        twin = self._usable_twin(ref)
        if twin is not None:
            artifact, entries = twin
            return ResolvePlan(
                ref.local_twin().path, self.client.identity(artifact), "(in place)", entries, [], True
            )
        artifact = self.client.artifact(ref)
        identity = self.client.identity(artifact)
        entries = self.client.entries(artifact, ref)
        root = persistent_root(self.options.artifact_dir)
        if root is None:
            return ResolvePlan(ref.path, identity, "(a temporary directory)", entries, entries)
        dest = root / version_dirname(ref, identity.version)
        todo = plan_download(entries, dest).todo if dest.is_dir() else entries
        return ResolvePlan(ref.path, identity, str(dest), entries, todo)

    def resolve(self, text: str, stack: contextlib.ExitStack,
                progress: Callable[[int], None] | None = None) -> ResolvedCheckpoint:  # fmt: skip
        """Resolve and fetch; temporary files live until ``stack`` closes."""
        ref = self.parse(text)
        twin = self._usable_twin(ref)
        if twin is not None:
            artifact, entries = twin
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=TEMP_PREFIX)))
            root = in_place_root(check_twin(entries), scratch)
            path = find_checkpoint_root(root, self.options.checkpoint_subdir)
            log.info("using %s in place at %s", ref.local_twin(), root)
            return ResolvedCheckpoint(path, ref.local_twin().path, self.client.identity(artifact), True, root)
        artifact = self.client.artifact(ref)
        identity = self.client.identity(artifact)
        dest = stack.enter_context(checkpoint_destination(ref, identity.version, self.options.artifact_dir))
        cache_skip = self.options.cache_skip
        if cache_skip is None:
            cache_skip = env_flag("WANDB_CACHE_SKIP", True)
        fetched = 0
        if cache_skip:
            entries = self.client.entries(artifact, ref)
            # The lock only saves duplicate transfers; each file is verified regardless.
            with FileLock(str(dest.parent / f".{dest.name}.lock")):
                plan = download(entries, dest, _sources, progress=progress)
            fetched = plan.bytes_needed
        else:
            log.info("WANDB_CACHE_SKIP=false: downloading %s through the W&B cache", ref)
            artifact.download(root=str(dest))
        path = find_checkpoint_root(dest, self.options.checkpoint_subdir)
        return ResolvedCheckpoint(path, ref.path, identity, False, dest, fetched)


def registry_identity(text: str, client: WandbRegistry | None = None) -> dict[str, Any]:
    """The version a reference points at now (one lookup, no download): for result identity."""
    resolver = Resolver(client)
    ref = resolver.parse(text)
    for candidate in (ref, ref.local_twin()):
        if resolver.client.exists(candidate):
            ident = resolver.client.identity(resolver.client.artifact(candidate))
            return {"qualified_name": ident.qualified_name, "digest": ident.digest}
    resolver.client.artifact(ref)  # raises the not-found error with its explanation
    raise AssertionError("unreachable")
