"""The promotion options ``compare``, ``sweep`` and ``watch`` share (see eval_framework.promotion)."""

from __future__ import annotations

import typer

PROMOTE_OPTION = typer.Option(
    "--promote",
    help="Move this registry alias (e.g. best-arc) to a version that beats its holder per --when.",
    rich_help_panel="Promotion",
)
WHEN_OPTION = typer.Option(
    "--when",
    help='The rule of --promote: "<task>/<metric> improves", tested on the samples both versions share.',
    rich_help_panel="Promotion",
)
ALPHA_OPTION = typer.Option(
    "--alpha", help="The p-value a promotion's paired test must be under.", rich_help_panel="Promotion"
)
DRY_RUN_OPTION = typer.Option(
    "--dry-run", help="Say what --promote would move; change nothing.", rich_help_panel="Promotion"
)
