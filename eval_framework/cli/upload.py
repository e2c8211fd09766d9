"""``upload``: send finished bundles to W&B and/or the Hugging Face Hub after the fact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from eval_framework.cli.common import app, parse_path, say_on_interrupt
from eval_framework.cli.evaluate import publish_and_report
from eval_framework.cli.options import sink_options
from eval_framework.config import read_config_file
from eval_framework.results import Bundle
from eval_framework.sinks.settings import build_sink_settings


@app.command("upload")
@sink_options
def upload_command_cli(
    paths: Annotated[
        list[Path],
        typer.Argument(
            parser=parse_path,
            help="Bundle directories, directories holding bundles, quoted globs, or invocation ids "
            "(inv-..., or the path of an invocation record).",
        ),
    ],
    sink_flags: dict[str, Any],  # the --wandb-* and --hf-* options (@sink_options)
    config: Annotated[
        Path | None,
        typer.Option(
            parser=parse_path, help="YAML file with any of these options (flags win; other keys are ignored)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be created or updated; send nothing.")
    ] = False,
) -> None:
    """Log finished bundles to W&B (and/or upload them to the Hugging Face Hub) after the fact:
    the same run, records and artifacts as live logging."""
    import json

    from eval_framework.errors import ConfigError
    from eval_framework.sinks.publish import find_bundles, plan

    file_values = read_config_file(config) if config else {}  # the evaluation's keys are ignored
    sinks = build_sink_settings(file_values, sink_flags, "eval_framework upload").publish_options()
    if not sinks.any:
        raise ConfigError("nothing to upload to: pass --wandb-project and/or --hf-upload-repo")
    say_on_interrupt("what was already logged is kept and recorded; rerun the same command to finish")
    if not dry_run:
        from eval_framework.sinks.publish import preflight

        preflight(sinks)
    bundles = find_bundles(paths)
    if sink_flags["wandb_run_id"] and len(bundles) > 1:
        raise ConfigError("--wandb-run-id names one run: pass exactly one bundle with it")
    if dry_run:
        print(json.dumps([plan(b, sinks) for b in bundles], indent=2))
        return
    finished = [b for b in bundles if Bundle(b).is_complete()]
    skipped = sorted(set(bundles) - set(finished))
    for path in skipped:
        print(f"skipping {path}: {Bundle(path).skip_reason()}", file=sys.stderr)
    if finished:
        publish_and_report(finished, sinks)
    if skipped:
        from eval_framework.errors import OutputError

        exported = "the others are exported" if finished else "nothing was exported"
        raise OutputError(
            f"{len(skipped)} of {len(bundles)} bundle(s) skipped (see above), {exported}; do what each "
            "line says, then upload again (upload --dry-run shows what each bundle lacks)"
        )
