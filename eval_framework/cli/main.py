"""The entry point: ``main()`` runs a command and turns every EvalFrameworkError into one line on
stderr and its exit code (full traceback with -v or EVAL_FRAMEWORK_DEBUG=1)."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import os
import signal
import sys
import traceback
from typing import Any

import click
import typer

# Importing them registers the commands, in the order --help lists them.
# isort: off
from eval_framework.cli import evaluate, upload, export, sweep, watch, compare, commands  # noqa: F401

# isort: on
from eval_framework.bundle_io import IN_THE_WAY, in_the_way
from eval_framework.cli.common import app, on_interrupt, set_command_line
from eval_framework.errors import EvalFrameworkError, brief
from eval_framework.llm_args import MULTI_VALUE_OPTIONS, expand_multi_value_options
from eval_framework.redact import scrub
from eval_framework.results import forget_cached


def _debug(args: list[str]) -> bool:
    # Read when an error is shown, not at start: .env (loaded by the command) may set it.
    return "-v" in args or "--verbose" in args or os.environ.get("EVAL_FRAMEWORK_DEBUG", "").strip() == "1"


def _error(message: str, args: list[str], exc: BaseException | None = None) -> None:
    """The one line a failure prints (the traceback first with -v), scrubbed of secrets."""
    if exc is not None and _debug(args):
        print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    print(f"error: {' '.join(scrub(message).split())}", file=sys.stderr)


def _click_errors(name: str) -> tuple[type[BaseException], ...]:
    """click's exception class ``name``, and typer's copy of it: newer typer vendors its own click."""
    modules: list[Any] = [click.exceptions]
    if importlib.util.find_spec("typer._click") is not None:
        modules.append(importlib.import_module("typer._click.exceptions"))
    return tuple(getattr(m, name) for m in modules if hasattr(m, name))


def _usage_message(exc: Any) -> str:
    """click's usage error as one line, naming the command whose --help lists the options."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "eval_framework"
    message = exc.format_message().strip().rstrip(".")
    option = getattr(exc, "option_name", None)
    if command != "eval_framework" and option in _ROOT_ONLY:
        given = f"{option} FILE" if option == "--env-file" else option
        first = f"eval_framework {given} {command.split()[-1]} ..."
        return f"{option} is an option of eval_framework itself: put it before the subcommand ({first})"
    return f"{message[:1].lower()}{message[1:]}; see '{command} --help'"


#: Options of the command itself, which apply to every subcommand when given before it.
_ROOT_ONLY = ("-v", "--verbose", "--env-file")


def _stopped(args: list[str], exc: BaseException | None = None) -> int | None:
    """When a stop signal arrived, the outcome is the stop, whatever error it caused on its way
    (an import cut short reads as a missing package, a model call as a model failure)."""
    from eval_framework import cleanup

    signum = cleanup.stopped_by()
    if signum is None:
        return None
    if signum == signal.SIGINT:
        _error(f"interrupted: {on_interrupt()}", args, exc)
        return 130
    _error(f"stopped by SIGTERM: {on_interrupt()}", args, exc)
    return 128 + signum


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by tests)."""
    from eval_framework import cleanup

    args = list(sys.argv[1:] if argv is None else argv)
    set_command_line(args)
    # A log handler that cannot write (a full disk, a closed pipe) must not print logging's own
    # traceback ("--- Logging error ---"); the failure that matters is reported by its own path.
    logging.raiseExceptions = False
    cleanup.reset()
    forget_cached()
    cleanup.install_signal_handlers()  # a scheduler's SIGTERM and Ctrl-C go through our handlers
    with cleanup.owning_process():  # the W&B SDK's environment is set per call, then restored
        return _run_command(args)


def _run_command(args: list[str]) -> int:
    """The command, every failure turned into one line and an exit code."""
    from eval_framework.cleanup import Preempted

    ways_out: tuple[type[BaseException], ...] = (
        click.exceptions.Exit,
        typer.Exit,
        *_click_errors("ClickException"),
    )
    try:  # from here on, a stop is said in one line whatever it cuts short
        sub = _subcommand(args)
        args = expand_multi_value_options(
            args, _MULTI_VALUE.get(sub, frozenset()) if sub else MULTI_VALUE_OPTIONS
        )
        command = typer.main.get_command(app)
        result = command.main(args=args, prog_name="eval_framework", standalone_mode=False)
    except EvalFrameworkError as exc:
        stopped = _stopped(args, exc)
        if stopped is not None:
            return stopped
        _error(str(exc), args, exc)
        return exc.exit_code
    except ways_out as exc:
        return _click_exit(args, exc)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt) as exc:
        _error(f"interrupted: {on_interrupt()}", args, exc)
        return 130
    except Preempted as exc:  # what finished is saved: a clean exit, to be resumed
        print(f"stopped: {scrub(exc.reason)}", file=sys.stderr)
        return 0
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            _error(f"stopped by SIGTERM: {on_interrupt()}", args)
            return int(exc.code)
        raise
    except OSError as exc:
        return _os_error(args, exc)
    except Exception as exc:  # a bug: still one line, with the way to the traceback  # noqa: BLE001
        stopped = _stopped(args, exc)
        if stopped is not None:
            return stopped
        _error(
            f"unexpected {brief(exc, with_type=True)} (this is a bug in eval_framework; rerun with -v and "
            "report the traceback)",
            args,
            exc,
        )
        return 1
    code = int(result) if isinstance(result, int) else 0
    if code == 130:  # typer returns Ctrl-C as exit code 130 when not in standalone mode
        _error(f"interrupted: {on_interrupt()}", args)
    return code


def _click_exit(args: list[str], exc: BaseException) -> int:
    """click's own ways out: an exit code (--help), no command given, a usage error."""
    if isinstance(exc, click.exceptions.Exit | typer.Exit):
        return int(getattr(exc, "exit_code", 0) or 0)
    if isinstance(exc, _click_errors("NoArgsIsHelpError")):
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            print(ctx.get_help())
        print("error: no command given; see 'eval_framework --help'", file=sys.stderr)
        return 2
    _error(_usage_message(exc), args)
    return int(getattr(exc, "exit_code", 2))


def _os_error(args: list[str], exc: OSError) -> int:
    """An OS error nothing below turned into our own: a stop, a full disk, a path in the way."""
    stopped = _stopped(args, exc)
    if stopped is not None:
        return stopped
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {exc.filename}" if exc.filename else ""
        advice = f"free space and rerun: {on_interrupt()}"
        _error(f"the disk is full{where} ({exc.strerror}); {advice}", args, exc)
        return 5
    if exc.filename and exc.errno in IN_THE_WAY:
        _error(str(in_the_way(exc.filename, exc)), args, exc)
        return 5
    if exc.filename:
        _error(f"cannot use {exc.filename}: {exc.strerror}; check that path and its permissions, then "
               "rerun (-v shows where it failed)", args, exc)  # fmt: skip
        return 5
    _error(f"{brief(exc, with_type=True)}; rerun with -v for details", args, exc)
    return 1


#: A subcommand's options that take several values after one flag (its positional arguments go
#: before them): ``export out/ --log-metrics acc f1``.
_MULTI_VALUE: dict[str, frozenset[str]] = {"export": frozenset({"--log-metrics"})}


def _subcommand(args: list[str]) -> str | None:
    """The subcommand the command line runs, if any. The root command takes several values after
    its list flags (``--llm-args a=1 b=2``); a subcommand only after those in ``_MULTI_VALUE``, since
    its positional arguments must stay its own (``upload --wandb-tags nightly out/``)."""
    root = typer.main.get_command(app)
    takes_value = {
        opt
        for param in root.params
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False)
        for opt in param.opts
    }
    subcommands = set(getattr(root, "commands", {}))
    tokens = iter(args)
    for token in tokens:
        if token.startswith("-"):
            if token in takes_value:
                next(tokens, None)
            continue
        return token if token in subcommands else None
    return None


def run() -> None:
    code = main()
    from eval_framework import cleanup

    cleanup.finished(code)
    if "wandb" in sys.modules:
        # Leave through one bounded path: the W&B SDK's exit handler joins a service that may still
        # wait on an unreachable server (minutes), and Python's own shutdown resets the signal
        # handlers after the exit handlers ran, so a stop there would kill the process silently.
        cleanup.exit_now(code)
    sys.exit(code)
