"""The export ledger: ``exports.jsonl`` in each bundle, one line per export attempt.

It tells ``upload --dry-run`` what exists already, what an offline run left pending (lineage,
registry link), and where the results went. Lines are appended and fsynced; the bundle's own
files are never rewritten by an export.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval_framework.redact import redact
from eval_framework.results import EXPORTS

if TYPE_CHECKING:
    from eval_framework.sinks.wandb_sink import LogReport
    from eval_framework.sinks.wandb_spec import Mode, RunSpec


def append(bundle_dir: Path, entry: dict[str, Any]) -> None:
    line = json.dumps(redact({"time": datetime.now(UTC).isoformat(timespec="seconds"), **entry}),
                      sort_keys=True, default=str)  # fmt: skip
    with (bundle_dir / EXPORTS).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read(bundle_dir: Path) -> list[dict[str, Any]]:
    path = bundle_dir / EXPORTS
    if not path.is_file():
        return []
    entries = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # a torn last line from a killed process: the next export appends anew
        if isinstance(entry, dict) and isinstance(entry.get("destination"), str):
            entries.append(entry)  # anything else is not a ledger entry: an export is redone, never skipped
    return entries


def last(bundle_dir: Path, destination: str, **match: Any) -> dict[str, Any] | None:
    for entry in reversed(read(bundle_dir)):
        if entry.get("destination") == destination and all(entry.get(k) == v for k, v in match.items()):
            return dict(entry)
    return None


def wandb_entry(
    spec: RunSpec, mode: Mode, status: str, report: LogReport, error: str | None = None,
    records: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "destination": "wandb",
        "status": status,
        "mode": mode,
        "project": spec.project,
        "entity": spec.entity,
        "run_id": spec.run_id,
        "url": report.url,
        "offline_dir": str(report.offline_dir) if report.offline_dir else None,
        "content_hash": spec.content_hash,
        "records": records,
        "artifact": f"{spec.artifact_name}:{spec.artifact_alias}",
        "logged": report.logged,
        "pending": report.pending,
        "error": error,
    }
