"""``export``: send finished bundles to destinations by name (``local``, and plugins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eval_framework.cli.common import app, parse_path, say_on_interrupt
from eval_framework.config import read_yaml_mapping
from eval_framework.errors import ConfigError
from eval_framework.redact import refuse_masked

if TYPE_CHECKING:
    from eval_framework.exporting import ExportSummary


def _config_value(value: str | None) -> dict[str, Any]:
    """--config: inline JSON (``'{"format": "csv"}'``) or a YAML/JSON file."""
    if not value:
        return {}
    stripped = value.lstrip()
    if stripped.startswith("[") or (not stripped.startswith("{") and not Path(value).exists()):
        raise ConfigError(
            f"--config {value!r} is neither a JSON object of config keys nor an existing file; pass "
            """'{"output_dir": "exports", ...}' or the path of a YAML/JSON file"""
        )
    if stripped.startswith("{"):
        try:
            data: dict[str, Any] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"--config is not valid JSON ({exc.msg} at column {exc.colno}); fix it"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError("--config must be a JSON object of config keys")
    else:
        data = read_yaml_mapping(Path(value), f"--config {value}", ConfigError, "config keys to values")
    refuse_masked(data, "--config", ConfigError)
    return data


@app.command("export")
def export_command_cli(
    paths: Annotated[
        list[Path],
        typer.Argument(
            parser=parse_path,
            help="Bundle directories, directories holding bundles, quoted globs, or invocation ids "
            "(inv-..., or the path of an invocation record).",
        ),
    ],
    dest: Annotated[
        list[str],
        typer.Option(
            "--dest",
            help="Destination (repeatable): local, wandb, hf, mlflow, gsheets, or an installed plugin.",
        ),
    ],
    config: Annotated[
        str | None,
        typer.Option(
            help="The destination's keys, as inline JSON or a YAML file; with several --dest, one "
            "mapping per destination name."
        ),
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help="json or csv (local).")] = None,
    log_metrics: Annotated[
        list[str] | None,
        typer.Option(help="Export only metrics whose names contain one of these (stderr and n follow)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Export even what a destination already holds.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what each destination would do; write nothing.")] = False,
) -> None:
    """Export finished bundles: created, updated or unchanged per destination; a destination that
    fails exits 7 with the command that retries just it."""
    from eval_framework.exporting import configs_by_destination, run_export
    from eval_framework.sinks.registry import sink_class

    dest = list(dict.fromkeys(dest))
    configs = configs_by_destination(dest, _config_value(config))
    for flag, key, value in (("--format", "format", format), ("--log-metrics", "log_metrics", log_metrics)):
        if not value:
            continue
        takers = [n for n in dest if key in sink_class(n).Config.model_fields]
        if len(takers) < len(dest):  # said, never silently ignored
            others = ", ".join(n for n in dest if n not in takers)
            raise ConfigError(f"{flag} does not apply to {others} (it takes no {key!r}); leave it out for it")
        for name in takers:  # the flag wins over the config's key
            configs[name][key] = list(value) if isinstance(value, list) else value
    say_on_interrupt("each bundle's export is whole or not made; rerun the same command to finish")
    summary, error = run_export(paths, dest, configs, force=force, dry_run=dry_run)
    if dry_run:
        plan = [{"destination": d, "bundle": str(b), "would": w} for d, b, w in summary.planned]
        plan += [{"bundle": str(b), "skip": why} for b, why in summary.skipped.items()]
        print(json.dumps(plan, indent=2))
        return
    print_summary(summary, dest)
    if error is not None:  # after saying what was done
        raise error


def print_summary(summary: ExportSummary, destinations: list[str]) -> None:
    """One line per destination: how many bundles were created, updated, unchanged (and failed,
    when any did), and where."""
    for name in destinations:
        where = {e.location for e in summary.exported if e.destination == name}
        # one location holding another (a wandb sync command growing with each offline run): the
        # longest says it all
        where = {w for w in where if not any(o != w and o.startswith(w) for o in where)}
        counts = ", ".join(
            f"{summary.count(name, status)} {status}" for status in ("created", "updated", "unchanged")
        )
        failed = summary.count(name, "failed")
        counts += f", {failed} failed" if failed else ""
        print(f"{name}: {counts}" + (f" ({', '.join(sorted(where))})" if where else ""))
