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

from eval_framework import env
from eval_framework.errors import DownloadError
from eval_framework.registry.checkpoint_root import find_checkpoint_root, safe_join
from eval_framework.registry.dest_files import remove_extra_files
from eval_framework.registry.destination import (
    TEMP_PREFIX,
    checkpoint_destination,
    persistent_root,
    version_dirname,
)
from eval_framework.registry.download import download, plan_download
from eval_framework.registry.local_twin import TwinCheck, check_twin, in_place_root, wait_timeout, wait_until
from eval_framework.registry.manifest import ByteSource, ManifestEntry, same_contents, verify_file
from eval_framework.registry.progress import download_bar
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


@dataclass(frozen=True)
class Choice:
    """Which version is evaluated, and whether the ``-local`` twin's files are used in place."""

    reference: str  #: the version the result belongs to
    identity: ArtifactIdentity
    artifact: Any  #: that version's SDK object
    entries: list[ManifestEntry] = field(default_factory=list)  #: the twin's, when in place
    check: TwinCheck | None = None  #: the twin's files here, when in place

    @property
    def in_place(self) -> bool:
        return self.check is not None


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

    def choose(self, ref: CheckpointRef) -> Choice:
        """The version to evaluate and where its files come from (one decision for the result's
        identity, ``--dry-run`` and the fetch, so they always agree)."""
        twin = ref.local_twin()
        if self.client.exists(twin, shown=ref):
            artifact = self.client.artifact(twin)
            entries = self.client.entries(artifact, twin)
            check = check_twin(entries)
            if check.usable:
                return self._in_place(ref, artifact, entries, check)
            log.warning("%s exists but not all its files are here (%s); waiting for %s",
                        twin, "; ".join(check.problems[:3]), ref)  # fmt: skip
            wait_until(lambda: self.client.exists(ref), ref.path, wait_timeout())
        artifact = self.client.artifact(ref)
        return Choice(ref.path, self.client.identity(artifact), artifact)

    def _in_place(
        self, ref: CheckpointRef, twin: Any, entries: list[ManifestEntry], check: TwinCheck
    ) -> Choice:
        """The twin's files, used where they are. Once the upload has the same files, the result
        belongs to the uploaded version (grouped and keyed with evaluations that downloaded it)."""
        if self.client.exists(ref):
            uploaded = self.client.artifact(ref)
            if same_contents(entries, self.client.entries(uploaded, ref, with_urls=False)):
                return Choice(ref.path, self.client.identity(uploaded), uploaded, entries, check)
        return Choice(ref.local_twin().path, self.client.identity(twin), twin, entries, check)

    def plan(self, text: str) -> ResolvePlan:
        ref = self.parse(text)
        choice = self.choose(ref)
        if choice.in_place:
            return ResolvePlan(choice.reference, choice.identity, "(in place)", choice.entries, [], True)
        identity = choice.identity
        entries = self.client.entries(choice.artifact, ref)
        root = persistent_root(self.options.artifact_dir)
        if root is None:
            return ResolvePlan(ref.path, identity, "(a temporary directory)", entries, entries)
        dest = root / version_dirname(identity)
        todo = plan_download(entries, dest).todo if dest.is_dir() else entries
        return ResolvePlan(ref.path, identity, str(dest), entries, todo)

    def resolve(self, text: str, stack: contextlib.ExitStack,
                progress: Callable[[int], None] | None = None) -> ResolvedCheckpoint:  # fmt: skip
        """Resolve and fetch; temporary files live until ``stack`` closes. Without ``progress``
        (byte increments), the download reports to the process's bar factory (silent unless the
        command line installed one)."""
        ref = self.parse(text)
        return self.fetch(ref, self.choose(ref), stack, progress)

    def fetch(self, ref: CheckpointRef, choice: Choice, stack: contextlib.ExitStack,
              progress: Callable[[int], None] | None = None) -> ResolvedCheckpoint:  # fmt: skip
        """The files of a version already chosen (no second lookup of the reference: the version
        evaluated is the one the result's identity names)."""
        if choice.check is not None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=TEMP_PREFIX)))
            root = in_place_root(choice.check, scratch)
            path = find_checkpoint_root(root, self.options.checkpoint_subdir)
            log.info("using the files of %s in place at %s", ref.local_twin(), root)
            return ResolvedCheckpoint(path, choice.reference, choice.identity, True, root)
        artifact, identity = choice.artifact, choice.identity
        dest = stack.enter_context(checkpoint_destination(identity, self.options.artifact_dir))
        cache_skip = self.options.cache_skip
        if cache_skip is None:
            cache_skip = bool(env.get("WANDB_CACHE_SKIP"))
        fetched = 0
        if cache_skip:
            entries = self.client.entries(artifact, ref)
            # The lock only saves duplicate transfers; each file is verified regardless.
            with FileLock(str(dest.parent / f".{dest.name}.lock")):
                if progress is not None:
                    plan = download(entries, dest, _sources, progress=progress)
                else:
                    with download_bar(f"{ref.name}:{identity.version}") as bar:
                        plan = download(entries, dest, _sources, progress=bar.advance, on_total=bar.start)
                # What the folder holds is what gets loaded: only the manifest's files.
                remove_extra_files(dest, entries)
            fetched = plan.bytes_needed
        else:
            log.info("WANDB_CACHE_SKIP=false: downloading %s through the W&B cache", ref)
            artifact.download(root=str(dest))
            _check_sdk_download(dest, self.client.entries(artifact, ref, with_urls=False))
        path = find_checkpoint_root(dest, self.options.checkpoint_subdir)
        return ResolvedCheckpoint(path, ref.path, identity, False, dest, fetched)


def _check_sdk_download(dest: Path, entries: list[ManifestEntry]) -> None:
    """What the SDK's cached download delivered, verified as our own downloads are: a file that
    does not match is removed here and from the SDK cache (else every later download would be
    served the same bytes), and the command fails."""
    from eval_framework.registry.sdk_cache import evict

    bad = [e for e in entries if not verify_file(safe_join(dest, e.path), e)]
    for entry in bad:
        evict(entry)
        safe_join(dest, entry.path).unlink(missing_ok=True)
    if bad:
        shown = ", ".join(e.path for e in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DownloadError(
            f"the W&B cache delivered bytes that do not match the manifest for {shown}; they were removed "
            "from the cache and the destination: run again to fetch them anew (WANDB_CACHE_SKIP=true "
            "bypasses the cache)"
        )
    remove_extra_files(dest, entries)
