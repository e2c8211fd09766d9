"""What every command shares: the typer app, logging to stderr, what an interrupt says, and the
parser of path options."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import typer

from eval_framework.redact import ScrubFilter

app = typer.Typer(
    name="eval_framework",
    help="Evaluate LLM checkpoints on benchmarks; results land in a resumable bundle per evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (a notebook or a test may have
    replaced it since the handler was made)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: bool) -> None:
    """The command's console log, on the root logger: warnings from a model's own code and the
    libraries it uses are printed scrubbed of secrets like ours (Python's fallback would print
    them as they are)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.addFilter(ScrubFilter())
        root.addHandler(handler)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # urllib3 warns of each retry it makes ("Retrying ... after connection broken"); the
    # failure, if it stays, is said once by the code that called, in its own words.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.DEBUG if verbose else logging.ERROR)


#: What a user is told when a command is interrupted; each command says what it keeps.
_on_interrupt = ["nothing finished is lost; rerun the same command"]


def say_on_interrupt(text: str) -> None:
    _on_interrupt[0] = text


def on_interrupt() -> str:
    return _on_interrupt[0]


#: The command line being run (its arguments, as main() received them), for invocation records.
_command_line: list[str] = []


def set_command_line(args: list[str]) -> None:
    _command_line[:] = args


def command_line() -> list[str]:
    return ["eval_framework", *_command_line]


def parse_path(value: str) -> Path:
    """A path option's value; an empty one (an unset variable in a script) is not the current
    directory."""
    if isinstance(value, Path):  # a default, not something typed
        return value
    if not value.strip():
        raise typer.BadParameter("is empty; pass a path")
    return Path(value)
