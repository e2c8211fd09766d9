"""Older bundle files brought up to the current schema on read; newer ones refused by name.

A migration works on a copy and only adds or renames: the stored file is never rewritten (its seal
covers what is stored), and what a result meant when it was written stays as written: a schema 2
bundle's acc_norm is per byte, and ``Bundle`` checks its rows by that rule (docs/bundle.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

from eval_framework.bundle_schema import SCHEMA_VERSION

FileKind = Literal["metadata", "results", "row"]
Step = Callable[[dict[str, Any]], None]


class TooNew(Exception):
    """Written by a newer eval_framework than this one."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"written by a newer eval_framework (bundle schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}); upgrade eval_framework to read it"
        )
        self.version = version


def _nothing(data: dict[str, Any]) -> None:
    """The step changed what a field means or added an optional one; nothing to rewrite."""


#: step[v] turns a version-v file into a version v+1 file (the version number is set after it).
_STEPS: dict[int, Step] = {
    1: _nothing,  # 2 added the seal: a schema 1 bundle has none, so it is never trusted as finished
    2: _nothing,  # 3 made acc_norm per character: rows keep the per-byte values they were scored with
    3: _nothing,  # 4 declared every field, and rows carry their version
}

#: Rows carried no version before schema 4.
_UNVERSIONED_ROW = 3


def written_version(data: dict[str, Any], kind: FileKind) -> Any:
    """The schema version a file says it was written with (rows before 4 say nothing)."""
    if kind == "row" and "schema_version" not in data:
        return _UNVERSIONED_ROW
    return data.get("schema_version")


def upgraded(data: dict[str, Any], kind: FileKind) -> dict[str, Any]:
    """``data`` (one parsed file, or one row) as the current schema has it. A missing or malformed
    version is left for validation to name; TooNew for a version from the future."""
    version = written_version(data, kind)
    if not isinstance(version, int) or isinstance(version, bool):
        return data
    if version > SCHEMA_VERSION:
        raise TooNew(version)
    if version == SCHEMA_VERSION or version < 1:
        return data
    out = dict(data) if kind == "row" else copy.deepcopy(data)  # rows: many, and steps touch only the top
    for step in range(version, SCHEMA_VERSION):
        _STEPS[step](out)
    out["schema_version"] = SCHEMA_VERSION
    return out
