"""The ``-local`` twin: a trainer registers ``<name>-local`` whose entries are ``file://``
references on a shared filesystem, before the real upload finishes. If every referenced file is
here (right size, and right digest when that is cheap), the checkpoint is used in place;
otherwise the uploaded version is awaited with backoff up to WANDB_ARTIFACT_WAIT_TIMEOUT_SEC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from eval_framework import env
from eval_framework.errors import ArtifactWaitTimeout
from eval_framework.registry.checkpoint_root import safe_join
from eval_framework.registry.manifest import ManifestEntry, file_ref_path, verify_file

WAIT_ENV = "WANDB_ARTIFACT_WAIT_TIMEOUT_SEC"
#: Digests are checked when the twin's files add up to at most this many bytes.
CHEAP_VERIFY_BYTES = 256 * 1024 * 1024


def wait_timeout() -> float:
    return float(env.get(WAIT_ENV))


@dataclass
class TwinCheck:
    usable: bool
    problems: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  #: manifest path -> local file


def check_twin(entries: Sequence[ManifestEntry], verify_limit: int = CHEAP_VERIFY_BYTES) -> TwinCheck:
    """Whether every entry is a file:// reference present here with the recorded size (and digest)."""
    check = TwinCheck(usable=True)
    verify = sum(e.size for e in entries) <= verify_limit
    for entry in entries:
        path = file_ref_path(entry)
        if path is None:
            check.problems.append(f"{entry.path}: not a file:// reference")
        elif not path.is_file():
            check.problems.append(f"{entry.path}: {path} is missing")
        elif path.stat().st_size != entry.size:
            check.problems.append(
                f"{entry.path}: {path} has {path.stat().st_size} bytes, expected {entry.size}"
            )
        elif verify and not verify_file(path, entry):
            check.problems.append(f"{entry.path}: {path} does not match its recorded digest")
        else:
            check.files[entry.path] = path
    check.usable = not check.problems and bool(entries)
    return check


def in_place_root(check: TwinCheck, scratch: Path) -> Path:
    """The directory to load from: the files' common root when their layout matches the manifest,
    else a directory of symlinks under ``scratch`` (still no copy of any bytes)."""
    roots: set[Path] = set()
    for rel, path in check.files.items():
        parts = PurePosixPath(rel).parts
        if tuple(path.parts[-len(parts) :]) != parts:
            roots = set()
            break
        roots.add(Path(*path.parts[: -len(parts)]))
    if len(roots) == 1:
        return roots.pop()
    for rel, path in check.files.items():
        link = safe_join(scratch, rel)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(path)
    return scratch


def wait_until(  # noqa: PLR0913  (the clock and sleep are for tests, keyword-only)
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    *,
    first_delay: float = 5.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll ``ready`` with doubling delays until it holds or ``timeout`` seconds have passed."""
    deadline = clock() + timeout
    delay = first_delay
    while not ready():
        remaining = deadline - clock()
        if remaining <= 0:
            raise ArtifactWaitTimeout(
                f"{what} did not appear within {timeout:g} s; its '-local' twin exists but its files are not "
                f"all on this machine. Raise {WAIT_ENV} to wait longer, or run where the twin's files are"
            )
        sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)
