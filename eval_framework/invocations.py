"""Invocation records: what one command evaluated, so its bundles can be exported by one id.

``<output_dir>/invocations/<id>.json`` lists the command (secrets masked), each task's bundle and
how it ended. The id is derived from the evaluations the command planned (their natural keys):
running the same command again, to resume it or to reuse its results, updates the same record.
``eval_framework export inv-...`` and ``export_results(["inv-..."])`` take the id in place of
bundle paths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval_framework.bundle_io import write_json
from eval_framework.bundle_schema import problem
from eval_framework.errors import ConfigError, OutputError
from eval_framework.redact import REDACTED, is_secret_key, masked_keys, redact

log = logging.getLogger(__name__)

RECORDS = "invocations"
RECORD_VERSION = 1
ID_PATTERN = re.compile(r"^inv-[0-9a-f]{12}$")
#: Where a bare id is looked for (the evaluation's default --output-dir).
DEFAULT_OUTPUT_DIR = Path("outputs")

EntryStatus = Literal["planned", "complete", "reused", "failed", "interrupted"]


class InvocationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    bundle: str  #: the bundle directory's name, beside the invocations folder
    natural_key: str
    status: EntryStatus = "planned"
    error: str | None = None
    #: exports of this bundle that failed (the evaluation itself is complete)
    export_errors: list[str] = Field(default_factory=list)


class InvocationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_version: int = RECORD_VERSION
    invocation_id: str
    command: list[str]
    started_at: str
    updated_at: str
    #: running, or how it ended: complete (every evaluation; exports may have failed, see each
    #: entry's export_errors), failed (an evaluation failed) or interrupted (a stop, e.g. SIGTERM)
    status: Literal["running", "complete", "failed", "interrupted"] = "running"
    bundles: list[InvocationEntry]
    #: the auto_export configs the command was given (secrets masked): ``export <id> --dest X``
    #: uses X's when no --config is given
    export_configs: dict[str, dict[str, Any]] = Field(default_factory=dict)


def invocation_id(natural_keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(natural_keys).encode()).hexdigest()
    return f"inv-{digest[:12]}"


def masked_command(argv: Sequence[str]) -> list[str]:
    """The command line with secrets masked: values after secret-named flags, secret assignments
    (``api_key=...``) and known secret values."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _ = arg.lstrip("-").partition("=")
        if arg.startswith("--") and is_secret_key(name.replace("-", "_")):
            hide_next = not eq
            out.append(f"{arg.partition('=')[0]}={REDACTED}" if eq else arg)
            continue
        out.append(str(redact(arg)))
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Invocation:
    """The record of one running command, written at each change (atomically)."""

    def __init__(
        self,
        output_dir: Path,
        entries: list[InvocationEntry],
        argv: Sequence[str],
        export_configs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.path = output_dir / RECORDS / f"{invocation_id([e.natural_key for e in entries])}.json"
        previous = _read_or_none(self.path)
        self.record = InvocationRecord(
            invocation_id=self.path.stem,
            command=masked_command(argv),
            started_at=previous.started_at if previous else _now(),
            updated_at=_now(),
            bundles=entries,
            export_configs=redact(export_configs or {}),
        )

    @property
    def id(self) -> str:
        return self.record.invocation_id

    def save(self) -> None:
        self.record.updated_at = _now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.record.model_dump(mode="json"))

    def mark(self, index: int, status: EntryStatus, error: str | None = None) -> None:
        entry = self.record.bundles[index]
        entry.status, entry.error = status, error
        if status in ("failed", "interrupted"):
            self.record.status = status
        elif all(e.status in ("complete", "reused") for e in self.record.bundles):
            self.record.status = "complete"
        self.save()

    def stopped(self, index: int, exc: BaseException) -> None:
        """The evaluation of entry ``index`` ended with ``exc``: failed, or interrupted by a stop."""
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            self.mark(index, "interrupted", error=type(exc).__name__)
        else:
            self.mark(index, "failed", error=str(redact(str(exc))))

    def export_failed(self, index: int, why: str) -> None:
        self.record.bundles[index].export_errors.append(str(redact(why)))
        self.save()


def _read_or_none(path: Path) -> InvocationRecord | None:
    try:
        return read_record(path)
    except (OutputError, ConfigError):
        return None


def read_record(path: Path) -> InvocationRecord:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no invocation record at {path}") from exc
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path} is not an invocation record (not valid JSON)") from exc
    try:
        return InvocationRecord.model_validate(data)
    except ValidationError as exc:
        raise OutputError(f"{path} is not an invocation record ({problem(exc)})") from exc


def is_record_file(path: Path) -> bool:
    return path.suffix == ".json" and path.parent.name == RECORDS and ID_PATTERN.match(path.stem) is not None


def _record_path(arg: str) -> Path | None:
    """The record file ``arg`` names (an id, looked up under ./outputs, or the file's path);
    None when it names no invocation."""
    path = Path(arg)
    if ID_PATTERN.match(arg) and not path.exists():
        path = DEFAULT_OUTPUT_DIR / RECORDS / f"{arg}.json"
        if not path.is_file():
            raise ConfigError(
                f"no invocation {arg} in {DEFAULT_OUTPUT_DIR / RECORDS}; pass the path of its record "
                f"instead (<output-dir>/{RECORDS}/{arg}.json, printed when the evaluation ended)"
            )
        return path
    if arg.startswith("inv-") and not path.exists():
        raise ConfigError(
            f"{arg} is neither an invocation id (inv- and 12 hex digits, as printed when an evaluation "
            "of several tasks ends) nor an existing path"
        )
    return path if path.is_file() and is_record_file(path) else None


def bundles_of(arg: str) -> list[Path] | None:
    """The bundle directories of the invocation ``arg`` names; None when it names none."""
    path = _record_path(arg)
    if path is None:
        return None
    return [path.parent.parent / entry.bundle for entry in read_record(path).bundles]


def stored_export_configs(args: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """The auto_export configs recorded by the invocations among ``args`` (the first one naming a
    destination wins); masked values are left out (credentials come from the environment)."""
    found: dict[str, dict[str, Any]] = {}
    for arg in args:
        path = _record_path(str(arg))
        if path is None:
            continue
        for name, keys in read_record(path).export_configs.items():
            masked = {k for k in keys if masked_keys(keys[k])}
            for key in sorted(masked):
                log.warning(
                    "%s: the %s export's %s was recorded with its secret masked; give it with --config "
                    "(or its environment variable) to use it",
                    path.stem, name, key,
                )  # fmt: skip
            found.setdefault(name, {k: v for k, v in keys.items() if k not in masked})
    return found
