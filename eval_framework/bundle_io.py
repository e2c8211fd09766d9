"""Reading and writing bundle files: atomic writes, typed reads, and failures said clearly.

Writes go through a temporary file and ``os.replace`` (a reader never sees half a file); a full
disk or a path taken by the wrong kind of thing is one line naming what to do, and says that
finished samples are kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from eval_framework.bundle_migrate import FileKind, TooNew, upgraded
from eval_framework.bundle_schema import problem
from eval_framework.errors import OutputError

M = TypeVar("M", bound=BaseModel)


class BundleDamaged(OutputError):
    """A bundle file exists but cannot be read as what it should be."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def write_failure(path: Path, exc: OSError) -> OutputError:
    """A failed write of a bundle file, said so that the user knows nothing finished is lost."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "the disk is full" if exc.errno != errno.EFBIG else "the file size limit was reached"
        return OutputError(
            f"cannot write {path}: {why} ({exc.strerror}); free space (or pass another --output-dir) and "
            "rerun the same command: finished samples are kept and the rerun resumes"
        )
    if exc.errno in IN_THE_WAY:
        return in_the_way(path, exc)
    return OutputError(
        f"cannot write {path}: {exc.strerror or exc}; fix the output directory and rerun the same "
        "command: finished samples are kept and the rerun resumes"
    )


#: A directory where a file belongs, or the reverse.
IN_THE_WAY = (errno.EISDIR, errno.ENOTDIR, errno.EEXIST)


def in_the_way(path: Path | str, exc: OSError) -> OutputError:
    """A path that is not what the bundle layout needs there (a directory named samples.jsonl, a
    file named like a bundle directory, a directory named like the lock file)."""
    return OutputError(
        f"cannot use {path}: {exc.strerror or exc}, so something else is in the way (a directory where "
        "a file belongs, or a file where a directory belongs); move it away and rerun the same command"
    )


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


#: Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = _read_umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and os.replace: readers never see half a file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise write_failure(path, exc) from exc
    try:
        # mkstemp makes the file private (0600); a bundle is shared with the team like any file
        # written by this user, so it gets the usual permissions (0666 less the umask).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_failure(path, exc) from exc
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    )


def _damaged(path: Path, why: str) -> BundleDamaged:
    if path.name == "results.json":  # made from the rows: a plain rerun makes it again
        return BundleDamaged(
            f"{path} is damaged ({why}); rerun the evaluation: it recomputes results.json from the "
            "sample rows, loading no model"
        )
    return BundleDamaged(
        f"{path} is damaged ({why}); rerun the evaluation with --overwrite to recompute it (the damaged "
        "bundle is replaced only once the new one is complete)"
    )


def read_json_file(path: Path, model: type[M], kind: FileKind) -> tuple[dict[str, Any], M]:
    """A bundle JSON file as stored and as the current schema reads it (``bundle_migrate``);
    BundleDamaged when it is not one, OutputError when it is unreadable or too new."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except IsADirectoryError as exc:
        raise in_the_way(path, exc) from exc
    except FileNotFoundError as exc:
        raise OutputError(
            f"{path} does not exist; pass an evaluation's bundle directory (one holding metadata.json)"
        ) from exc
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _damaged(path, "not valid JSON") from exc
    if not isinstance(data, dict):
        raise _damaged(path, "not a JSON object")
    try:
        current = upgraded(data, kind)
    except TooNew as exc:
        raise OutputError(f"{path} was {exc}") from exc
    try:
        return data, model.model_validate(current)
    except ValidationError as exc:
        raise _damaged(path, problem(exc)) from exc


def file_in_the_way(directory: Path) -> Path | None:
    """The file standing where ``directory`` or one of its parents must be a directory, if any."""
    return next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)


def ensure_writable(directory: Path) -> None:
    """Fail before any work if results cannot be written under ``directory``."""
    taken = file_in_the_way(directory)
    if taken is not None:
        raise OutputError(
            f"cannot write to output directory {directory}: {taken} is a file, not a directory; "
            "choose another --output-dir or move that file away"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"cannot write to output directory {directory}: {exc.strerror}; "
            "choose another --output-dir or fix its permissions"
        ) from exc
