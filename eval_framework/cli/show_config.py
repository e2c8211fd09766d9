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


def _line(indent: str, key: str, value: Any, source: str) -> str:
    if masked_keys(value):
        source += "; a secret, masked: give it in the environment or .env (read back as-is, refused)"
    return f"{indent}{key}: {json.dumps(value, ensure_ascii=False, default=str)}  # {source}"


def settings_text(
    configured: list[tuple[EvalConfig, dict[str, str]]],
    sinks: SinkSettings,
    auto: AutoExport | None,
    auto_source: str,
    file_values: dict[str, Any],
    sink_flags: dict[str, Any],
) -> str:
    """``configured``: each task's config with its values' sources (``configs_with_sources``)."""
    dumps = [(redact(c.model_dump(mode="json")), sources) for c, sources in configured]
    first, first_sources = dumps[0]
    per_task = {"task_name"} | {k for k in first if any(d[k] != first[k] for d, _ in dumps)}
    lines = ["# defaults < --config file < flags (secrets masked); usable as a --config file"]
    for key, value in first.items():
        if key not in per_task:
            lines.append(_line("", key, value, first_sources[key]))
    lines.append("tasks:")
    for dump, sources in dumps:
        for n, key in enumerate(sorted(per_task, key=lambda k: (k != "task_name", k))):
            lines.append(_line("  - " if n == 0 else "    ", key, dump[key], sources[key]))
    for key, value in redact(sinks.model_dump(mode="json")).items():
        lines.append(_line("", key, value, _source(key, file_values, sink_flags)))
    if auto is not None:
        lines.append(f"auto_export:  # {auto_source}")
        for key, value in redact(auto.model_dump(mode="json")).items():
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
