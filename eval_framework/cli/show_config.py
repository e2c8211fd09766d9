"""``--show-config``: the settings a command would run with, each with where it came from.

Printed as YAML (every value in JSON form, which YAML reads) with the source as a comment, so the
output can be saved and passed back as ``--config``. Secrets are masked.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from eval_framework.redact import masked_keys, redact

if TYPE_CHECKING:
    from eval_framework.config import EvalConfig
    from eval_framework.exporting import AutoExport
    from eval_framework.sinks.settings import SinkSettings


def _source(key: str, file_values: dict[str, Any], flags: dict[str, Any]) -> str:
    if flags.get(key) not in (None, (), []):
        return "flag"
    if key in file_values:
        return "--config"
    return "default"


def _entry_source(key: str, dump: dict[str, Any], entries: list[Any]) -> str | None:
    """``--config tasks[i]`` when the file's entry for this task (the one whose values it holds)
    set this key."""
    matches = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        given = {str(k).replace("-", "_"): v for k, v in entry.items()}
        if "subjects" in given and isinstance(given["subjects"], str):
            given["subjects"] = [s.strip() for s in given["subjects"].split(",") if s.strip()]
        if all(dump.get(k) == v for k, v in given.items()):
            matches.append((len(given), -index, key in given))
    if not matches:
        return None
    _, index, has_key = max(matches)
    return f"--config tasks[{-index}]" if has_key else None


def _line(indent: str, key: str, value: Any, source: str) -> str:
    if masked_keys(value):
        source += "; a secret, masked: give it in the environment or .env (read back as-is, refused)"
    return f"{indent}{key}: {json.dumps(value, ensure_ascii=False, default=str)}  # {source}"


def settings_text(
    configs: list[EvalConfig],
    sinks: SinkSettings,
    auto: AutoExport | None,
    file_values: dict[str, Any],
    flags: dict[str, Any],
    sink_flags: dict[str, Any],
) -> str:
    dumps = [redact(c.model_dump(mode="json")) for c in configs]
    per_task = {"task_name"} | {k for k in dumps[0] if any(d[k] != dumps[0][k] for d in dumps)}
    listed = file_values.get("tasks")
    entries = (
        [{"task_name": e} if isinstance(e, str) else e for e in listed] if isinstance(listed, list) else []
    )
    lines = ["# defaults < --config file < flags (secrets masked); usable as a --config file"]
    for key, value in dumps[0].items():
        if key not in per_task:
            lines.append(_line("", key, value, _source(key, file_values, flags)))
    lines.append("tasks:")
    for dump in dumps:
        for n, key in enumerate(sorted(per_task, key=lambda k: (k != "task_name", k))):
            source = _entry_source(key, dump, entries) or _source(key, file_values, flags)
            lines.append(_line("  - " if n == 0 else "    ", key, dump[key], source))
    for key, value in redact(sinks.model_dump(mode="json")).items():
        lines.append(_line("", key, value, _source(key, file_values, sink_flags)))
    if auto is not None:
        lines.append("auto_export:  # --config auto_export, --export-config over it")
        for key, value in redact(auto.model_dump(mode="json")).items():
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
