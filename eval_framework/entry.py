"""The console command's first code: stops (Ctrl-C, SIGTERM) are handled from the first
instruction, before the heavier modules load (about half a second in which a Ctrl-C would
otherwise print Python's traceback)."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from eval_framework import cleanup  # standard library only

        cleanup.install_signal_handlers()
        from eval_framework.cli import run as cli_run
    except (KeyboardInterrupt, SystemExit) as exc:
        code = 130 if isinstance(exc, KeyboardInterrupt) else exc.code
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped by SIGTERM"
        print(f"error: {what} while starting: nothing was done; rerun the same command", file=sys.stderr)
        raise SystemExit(code) from None
    cli_run()
