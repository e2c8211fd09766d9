"""Command line: the root command evaluates; subcommands do the rest.

``common`` holds the app and what commands share, ``options`` the results-destination options
defined once for the root command and ``upload``, one module per command (``evaluate``, ``upload``,
``commands`` for the small ones), and ``main`` the entry point that turns errors into one line.
"""

from __future__ import annotations

from eval_framework.cli.common import app
from eval_framework.cli.main import main, run

__all__ = ["app", "main", "run"]
