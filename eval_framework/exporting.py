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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval_framework.bundle_schema import problem
from eval_framework.config import read_yaml_mapping, split_list
from eval_framework.errors import ConfigError, EvalFrameworkError, ExportError, OutputError, brief
from eval_framework.invocations import stored_export_configs
from eval_framework.redact import redact
from eval_framework.results import Bundle
from eval_framework.sinks import ledger
from eval_framework.sinks.base import Exported, Sink, wanted
from eval_framework.sinks.publish import find_bundles
from eval_framework.sinks.registry import make_sink

log = logging.getLogger(__name__)


@dataclass
class ExportSummary:
    """What one export did: per destination, the bundles created, updated or unchanged there and
    those that failed, and the bundles left out because they are not finished evaluations."""

    exported: list[Exported] = field(default_factory=list)
    #: (destination, bundle, why) for each export that failed
    failed: list[tuple[str, Path, str]] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)
    #: a dry run's answer: (destination, bundle, what an export would do)
    planned: list[tuple[str, Path, str]] = field(default_factory=list)

    def count(self, destination: str, status: str) -> int:
        """Bundles with this status (created, updated, unchanged or failed) at ``destination``."""
        if status == "failed":
            return sum(1 for name, _, _ in self.failed if name == destination)
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
        how = (
            "give each destination's keys under its name"
            if len(destinations) > 1
            else "give the keys themselves, or add that destination with --dest"
        )
        raise ConfigError(
            f"export config: {extra[0]!r} is not one of the destinations ({', '.join(destinations)}); {how}"
        )
    for name, keys in given.items():
        if not isinstance(keys, Mapping):
            raise ConfigError(f"export config: {name} must be a mapping of its keys")
    return {name: dict(given.get(name) or {}) for name in destinations}


def export_results(
    paths: str | Path | Sequence[str | Path] = (),
    dest: str | Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    dry_run: bool = False,
    *,
    invocation_ids: Sequence[str] = (),
) -> ExportSummary:
    """Export the finished bundles at ``paths`` (bundle directories, directories holding them,
    quoted globs, or invocation ids) to ``dest``; a destination given no ``config`` takes the one
    its invocation's auto_export block had. Raises ConfigError before anything is sent when a
    destination or key is unknown or a destination cannot work; ExportError (after trying
    everything) when an export failed; OutputError when a bundle was left out because it is not
    finished. Either error carries the ``summary`` of what was done. ``dry_run``: send and write
    nothing; ``planned`` says what each destination would do (created, updated, unchanged).
    ``invocation_ids``: invocations to export, as in ``export_results(invocation_ids=["inv-..."],
    dest="wandb")``, besides (or instead of) ``paths``."""
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    if isinstance(invocation_ids, str):
        invocation_ids = [invocation_ids]
    summary, error = run_export([*given, *invocation_ids], dest, config, force, dry_run)
    if error is not None:
        error.summary = summary  # type: ignore[attr-defined]  # what was done before the failure
        raise error
    return summary


def run_export(
    paths: str | Path | Sequence[str | Path],
    dest: str | Sequence[str],
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> tuple[ExportSummary, EvalFrameworkError | None]:
    """``export_results``, returning the error instead of raising it (the command prints what was
    done, then the error)."""
    destinations = [dest] if isinstance(dest, str) else list(dict.fromkeys(dest))
    if not destinations:
        raise ConfigError("no export destination given; pass one, e.g. dest='local'")
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    if not given:
        raise ConfigError("nothing to export: pass bundle paths or invocation ids (invocation_ids=[...])")
    configs = configs_by_destination(destinations, config)
    for name, keys in stored_export_configs(given).items():
        if name in configs and not configs[name]:  # the invocation's auto_export config for it
            configs[name] = keys
    sinks = [_built(name, configs[name]) for name in destinations]
    bundles = find_bundles([Path(p) for p in given])
    summary = ExportSummary()
    finished = []
    for path in bundles:
        bundle = Bundle(path)
        if bundle.is_complete():
            finished.append(bundle)
        else:
            summary.skipped[path] = bundle.skip_reason()
            log.warning("skipping %s: %s", path, summary.skipped[path])
    _check_metric_filters(configs, finished)
    if dry_run:
        _plan(sinks, finished, force, summary)
        return summary, None
    failures = [f for sink in sinks for f in _export_to(sink, finished, force, summary)]
    if failures:
        command = export_command([b.dir for b in finished], [f.sink for f in failures], configs, force)
        return summary, ExportError.gathered(failures, command)
    if summary.skipped:
        return summary, OutputError(
            f"{len(summary.skipped)} of {len(bundles)} bundle(s) are not finished evaluations and were "
            "not exported (each is named above, with why); rerun or finish them, then export again"
        )
    return summary, None


def _built(name: str, config: dict[str, Any]) -> Sink:
    """A destination, made and checked; a plugin's own failure here is said as its own."""
    sink = make_sink(name, config)
    try:
        sink.preflight()
    except EvalFrameworkError:
        raise
    except Exception as exc:  # a plugin's bug or its service: named, not "a bug in eval_framework"
        from eval_framework.sinks.registry import BUILTIN

        whose = "" if name in BUILTIN else " (or ask its authors)"
        raise ConfigError(
            f"export destination {name!r} failed its check before exporting: {brief(exc, with_type=True)}; "
            f"fix its config or setup{whose}"
        ) from exc
    return sink


def _check_metric_filters(configs: Mapping[str, Mapping[str, Any]], bundles: list[Bundle]) -> None:
    """A ``log_metrics`` pattern that no metric of these bundles contains is a typo, not a filter:
    refused before anything is written."""
    names = sorted({m for b in bundles for m in b.metadata().task.metrics})
    for dest, keys in configs.items():
        for pattern in keys.get("log_metrics") or ():
            if names and not any(wanted(n, [str(pattern)]) for n in names):
                raise ConfigError(
                    f"{dest} export: log_metrics {pattern!r} matches no metric of these bundles "
                    f"(they have {', '.join(names)}; matching is by substring, case-sensitive)"
                )


def _plan(sinks: list[Sink], bundles: list[Bundle], force: bool, summary: ExportSummary) -> None:
    for sink in sinks:
        preview = getattr(sink, "preview", None)
        for bundle in bundles:
            status = preview(bundle) if callable(preview) else "export (this destination cannot preview)"
            if force and status == "unchanged":
                status = "updated"
            summary.planned.append((sink.name, bundle.dir, str(status)))


def _export_to(sink: Sink, bundles: list[Bundle], force: bool, summary: ExportSummary) -> list[ExportError]:
    failures: dict[str, list[str]] = {}  # why -> bundles: one line per cause, not per bundle
    for bundle in bundles:
        try:
            done = sink.publish(bundle, force=force)
            if not isinstance(done, Exported):
                raise TypeError(f"{sink.name}.publish() returned {type(done).__name__}, not an Exported")
        except Exception as exc:  # one bundle or destination failing never stops the others  # noqa: BLE001
            why = str(exc) if isinstance(exc, EvalFrameworkError) else brief(exc, with_type=True)
            failures.setdefault(why, []).append(bundle.dir.name)
            summary.failed.append((sink.name, bundle.dir, why))
            _record(bundle, {"destination": sink.name, "status": "failed", "error": why})
            continue
        summary.exported.append(done)
        _record(bundle, {"destination": sink.name, "status": done.status, "location": done.location})
    return [
        ExportError(why, sink=sink.name, what=f"{sink.name} export of {_names(names)}")
        for why, names in failures.items()
    ]


def _names(bundles: list[str]) -> str:
    return bundles[0] if len(bundles) == 1 else f"{len(bundles)} bundles ({bundles[0]}, ...)"


def _record(bundle: Bundle, entry: dict[str, Any]) -> None:
    try:
        ledger.append(bundle.dir, entry)
    except OSError as exc:  # the record is a courtesy; the export itself is done (or said failed)
        log.warning("cannot record the export in %s: %s", bundle.dir, exc.strerror)


def export_command(
    bundles: list[Path], destinations: list[str], configs: Mapping[str, Any], force: bool = False
) -> str:
    """The command that retries just the failed destinations, their config inline as JSON. Secret
    values are never printed: they are left out, and the command says which to supply."""
    import json

    names = list(dict.fromkeys(destinations))
    parts = ["eval_framework", "export", *(str(b) for b in bundles)]
    for name in names:
        parts += ["--dest", name]
    if force:
        parts.append("--force")
    chosen = {n: dict(configs.get(n) or {}) for n in names if configs.get(n)}
    held_back = []
    for name, keys in chosen.items():
        masked = redact(keys)
        for key in [k for k in keys if masked.get(k) != keys[k]]:
            held_back.append(f"{name}.{key}")
            del keys[key]
    inline = chosen.get(names[0], {}) if len(names) == 1 else {n: k for n, k in chosen.items() if k}
    if inline:
        parts += ["--config", json.dumps(inline, sort_keys=True, default=str)]
    command = shlex.join(parts)
    if held_back:
        command += f" (with {', '.join(held_back)} added to --config: secrets are not printed)"
    return command


class AutoExport(BaseModel):
    """An ``auto_export`` block: destinations to export each finished evaluation to, and their
    configs (``{destination: {key: value}}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: list[str] = Field(min_length=1)
    configs: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def check(self) -> None:
        """Build and check every destination now, before any model loads."""
        for name in self.configs:
            if name not in self.destinations:
                raise ConfigError(
                    f"auto_export: configs has {name!r}, which is not one of its destinations "
                    f"({', '.join(self.destinations)}); add it to destinations or remove its configs"
                )
        configs = configs_by_destination(self.destinations, self.configs)
        for name in dict.fromkeys(self.destinations):
            _built(name, configs[name])


def auto_export_settings(block: Any, export_config: Path | None) -> AutoExport | None:
    """The evaluation's automatic export: the ``auto_export`` block of its --config file, with
    --export-config's (a file holding such a block, or its keys alone) winning: its destinations
    replace the block's (and the configs of destinations it drops go with them), its configs are
    merged over the block's per destination."""
    layers = [_auto_block(block, "the auto_export block of --config")] if block is not None else []
    if export_config is not None:
        data = read_yaml_mapping(
            export_config, f"--export-config {export_config}", ConfigError, "auto_export keys"
        )
        if "auto_export" in data and len(data) > 1:
            other = next(k for k in data if k != "auto_export")
            raise ConfigError(
                f"--export-config {export_config} has {other!r} beside its auto_export block; put "
                "destinations and configs inside the block, or give them alone without it"
            )
        layers.append(_auto_block(data.get("auto_export", data), f"--export-config {export_config}"))
    if not layers:
        return None
    destinations: list[str] = []
    configs: dict[str, dict[str, Any]] = {}
    for layer in layers:
        if layer.get("destinations"):
            destinations = list(layer["destinations"])
            configs = {name: keys for name, keys in configs.items() if name in destinations}
        for name, keys in (layer.get("configs") or {}).items():
            configs[name] = {**configs.get(name, {}), **(keys or {})}
    try:
        return AutoExport(destinations=destinations, configs=configs)
    except ValidationError as exc:
        raise ConfigError(
            f"auto_export: {problem(exc)}; give destinations: [local, ...] and configs"
        ) from exc


def _auto_block(block: Any, where: str) -> dict[str, Any]:
    """One layer of auto_export, its shapes checked: destinations a list of names (or one name,
    or names separated by commas), configs a mapping of destination names to mappings."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where} must be a mapping (destinations: [...], configs: {{...}})")
    unknown = [k for k in block if k not in AutoExport.model_fields]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; it takes destinations and configs")
    layer = dict(block)
    if layer.get("destinations") is not None:
        layer["destinations"] = list(split_list(layer["destinations"], "destinations") or ())
        if not layer["destinations"]:
            raise ConfigError(f"{where}: destinations is empty; name at least one, e.g. [local]")
    configs = layer.get("configs")
    if configs is not None and not isinstance(configs, dict):
        raise ConfigError(f"{where}: configs must be a mapping of destination names to their keys")
    for name, keys in (configs or {}).items():
        if keys is not None and not isinstance(keys, dict):
            kind = type(keys).__name__
            raise ConfigError(f"{where}: configs.{name} must be a mapping of keys (key: value), not {kind}")
    return layer
