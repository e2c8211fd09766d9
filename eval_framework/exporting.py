"""Export finished bundles to destinations by name (``eval_framework export``, ``export_results``).

Every destination is built and checked (``preflight``) before anything is sent; an unfinished
bundle is reported and left out; one destination failing never stops another; each export of a
bundle is recorded in its ledger (``exports.jsonl``).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_framework.errors import ConfigError, EvalFrameworkError, ExportError, OutputError, brief
from eval_framework.redact import redact
from eval_framework.results import Bundle
from eval_framework.sinks import ledger
from eval_framework.sinks.base import Exported, Sink
from eval_framework.sinks.publish import find_bundles
from eval_framework.sinks.registry import make_sink

log = logging.getLogger(__name__)


@dataclass
class ExportSummary:
    """What one export did: per destination, the bundles created, updated or unchanged there, and
    the bundles left out because they are not finished evaluations."""

    exported: list[Exported] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)
    #: a dry run's answer: (destination, bundle, what an export would do)
    planned: list[tuple[str, Path, str]] = field(default_factory=list)

    def count(self, destination: str, status: str) -> int:
        return sum(1 for e in self.exported if e.destination == destination and e.status == status)


def configs_by_destination(
    destinations: Sequence[str], config: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """``config`` as each destination's own: for one destination its keys, for several a mapping
    from destination name to keys (as in an ``auto_export.configs`` block)."""
    given = dict(config or {})
    if len(destinations) == 1 and destinations[0] not in given:
        return {destinations[0]: given}
    extra = [k for k in given if k not in destinations]
    if extra:
        raise ConfigError(
            f"export config: {extra[0]!r} is not one of the destinations ({', '.join(destinations)}); "
            "with several destinations, give each its keys under its name"
        )
    for name, keys in given.items():
        if not isinstance(keys, Mapping):
            raise ConfigError(f"export config: {name} must be a mapping of its keys")
    return {name: dict(given.get(name) or {}) for name in destinations}


def export_results(
    paths: Sequence[str | Path],
    dest: str | Sequence[str],
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ExportSummary:
    """Export the finished bundles at ``paths`` (bundle directories or directories holding them) to
    ``dest``. Raises ConfigError before anything is sent when a destination or key is unknown or a
    destination cannot work; ExportError (after trying everything) when an export failed;
    OutputError when a bundle was left out because it is not finished. ``dry_run``: send and write
    nothing; ``planned`` says what each destination would do (created, updated, unchanged)."""
    destinations = [dest] if isinstance(dest, str) else list(dict.fromkeys(dest))
    if not destinations:
        raise ConfigError("no export destination given; pass one, e.g. dest='local'")
    configs = configs_by_destination(destinations, config)
    sinks = [make_sink(name, configs[name]) for name in destinations]
    for sink in sinks:
        sink.preflight()
    bundles = find_bundles([Path(p) for p in paths])
    summary = ExportSummary()
    finished = []
    for path in bundles:
        bundle = Bundle(path)
        if bundle.is_complete():
            finished.append(bundle)
        else:
            summary.skipped[path] = bundle.skip_reason()
            log.warning("skipping %s: %s", path, summary.skipped[path])
    if dry_run:
        for sink in sinks:
            preview = getattr(sink, "preview", None)
            for bundle in finished:
                status = preview(bundle) if callable(preview) else "export (this destination cannot preview)"
                if force and status == "unchanged":
                    status = "updated"
                summary.planned.append((sink.name, bundle.dir, status))
        return summary
    failures = [f for sink in sinks for f in _export_to(sink, finished, force, summary)]
    if failures:
        command = export_command([b.dir for b in finished], [f.sink for f in failures], configs)
        raise ExportError.gathered(failures, command)
    if summary.skipped:
        raise OutputError(
            f"{len(summary.skipped)} of {len(bundles)} bundle(s) are not finished evaluations and were "
            "not exported (the log says why for each); rerun or finish them, then export again"
        )
    return summary


def _export_to(sink: Sink, bundles: list[Bundle], force: bool, summary: ExportSummary) -> list[ExportError]:
    failures = []
    for bundle in bundles:
        try:
            done = sink.publish(bundle, force=force)
        except Exception as exc:  # one bundle or destination failing never stops the others  # noqa: BLE001
            why = str(exc) if isinstance(exc, EvalFrameworkError) else brief(exc, with_type=True)
            failures.append(ExportError(why, sink=sink.name, what=f"{sink.name} export of {bundle.dir.name}"))
            _record(bundle, {"destination": sink.name, "status": "failed", "error": why})
            continue
        summary.exported.append(done)
        _record(bundle, {"destination": sink.name, "status": done.status, "location": done.location})
    return failures


def _record(bundle: Bundle, entry: dict[str, Any]) -> None:
    try:
        ledger.append(bundle.dir, entry)
    except OSError as exc:  # the record is a courtesy; the export itself is done (or said failed)
        log.warning("cannot record the export in %s: %s", bundle.dir, exc.strerror)


def export_command(bundles: list[Path], destinations: list[str], configs: Mapping[str, Any]) -> str:
    """The command that retries just the failed destinations (their config inline, as JSON)."""
    import json

    names = list(dict.fromkeys(destinations))
    parts = ["eval_framework", "export", *(str(b) for b in bundles)]
    for name in names:
        parts += ["--dest", name]
    chosen = {n: configs.get(n) for n in names if configs.get(n)}
    if chosen:
        inline = chosen[names[0]] if len(names) == 1 else chosen
        parts += ["--config", json.dumps(redact(inline), sort_keys=True, default=str)]
    return shlex.join(parts)
