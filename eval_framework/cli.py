"""Command line: the root command evaluates; subcommands do the rest.

``main()`` turns every EvalFrameworkError into one line on stderr and its exit code
(full traceback with -v or EVAL_FRAMEWORK_DEBUG=1).
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from eval_framework.bundle_io import IN_THE_WAY, in_the_way
from eval_framework.config import build_config, load_env, read_config_file, split_list
from eval_framework.errors import EvalFrameworkError, brief
from eval_framework.llm_args import expand_multi_value_options, parse_llm_args
from eval_framework.redact import ScrubFilter, scrub
from eval_framework.results import Bundle, forget_cached

app = typer.Typer(
    name="eval_framework",
    help="Evaluate LLM checkpoints on benchmarks; results land in a resumable bundle per evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a notebook or a test may have
    replaced it since the handler was made)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger("eval_framework")
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler.addFilter(ScrubFilter())
        root.addHandler(handler)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)


# Results destinations, shared by the root command and 'upload'.
WandbProject = Annotated[
    str | None, typer.Option(help="Log to this W&B project (off when not given).", show_default=False)
]
WandbEntity = Annotated[str | None, typer.Option(help="W&B entity. [default: WANDB_ENTITY or your own]")]
WandbGroup = Annotated[
    str | None, typer.Option(help="Override the run group. [default: <checkpoint name>:<version>]")
]
WandbRunId = Annotated[
    str | None, typer.Option(help="Attach to this run id. [default: derived from the evaluation]")
]
WandbTags = Annotated[
    list[str] | None,
    typer.Option(help="Run tags: repeat the flag or give a comma-separated list (a,b)."),
]
WandbMode = Annotated[
    str | None, typer.Option(help="online, offline or disabled. [default: WANDB_MODE, else online]")
]
WandbUploadResults = Annotated[
    bool | None, typer.Option(help="Log the bundle as an eval-results artifact. [default: yes]")
]
WandbRegistry = Annotated[
    str | None,
    typer.Option(help="Link the results artifact into this registry: NAME or NAME/COLLECTION (online)."),
]
WandbTableRows = Annotated[
    int | None, typer.Option(help="Rows in the per-sample table, wrong answers first. [default: 1000]")
]
HfUploadRepo = Annotated[
    str | None, typer.Option(help="Upload the bundle to this Hugging Face dataset repo (token: HF_TOKEN).")
]
HfUploadDir = Annotated[str | None, typer.Option(help="Folder inside --hf-upload-repo.")]


def _sink_flags(params: dict[str, Any]) -> dict[str, Any]:
    """The --wandb-* and --hf-* values among a command's parameters or a config file's keys."""
    out = {k: v for k, v in params.items() if k.startswith(("wandb_", "hf_"))}
    out["wandb_tags"] = split_list(out.get("wandb_tags") or None, "wandb_tags")  # [] means not given
    return out


@app.callback(invoke_without_command=True)
def evaluate_command(
    ctx: typer.Context,
    llm_name: Annotated[
        str | None,
        typer.Option(
            help="Model: a class in the --models file, a dotted import path, or a built-in backend "
            "(hf, openai, embedded)."
        ),
    ] = None,
    task_name: Annotated[
        str | None,
        typer.Option(
            help="Task: a built-in name (see 'eval_framework tasks') or the path of a task YAML file."
        ),
    ] = None,
    models: Annotated[
        Path | None, typer.Option(parser=_path, help="Python file that defines model classes.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="W&B Registry checkpoint to evaluate, e.g. wandb-registry-model/llama-sft:v7 or "
            "llama-sft:prod (same as --llm-args artifact_name=...; --llm-name defaults to hf; any "
            "model class taking checkpoint= can evaluate it)."
        ),
    ] = None,
    artifact_dir: Annotated[
        Path | None,
        typer.Option(
            parser=_path,
            help="Keep downloaded checkpoints here and reuse them. "
            "[default: WANDB_ARTIFACT_DIR, else a temporary directory]",
        ),
    ] = None,
    llm_args: Annotated[
        list[str] | None,
        typer.Option(
            help="Model constructor arguments as key=value (typed; nested a.b=v); "
            "several may follow one flag."
        ),
    ] = None,
    num_fewshot: Annotated[
        int | None,
        typer.Option(
            help="Few-shot examples per prompt. [default: the task's standard count, "
            "see 'eval_framework tasks']"
        ),
    ] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="Evaluate a seeded random subset of this many samples. [default: all]")
    ] = None,
    subjects: Annotated[
        list[str] | None,
        typer.Option(help="Only these subjects (comma-separated or repeated), e.g. MMLU subjects."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for subset and few-shot selection. [default: 1234]")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size. [default: 8]")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Max new tokens for generation tasks. [default: the task's]")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(parser=_path, help="Where bundles are written. [default: outputs]")
    ] = None,
    task_data_dir: Annotated[
        Path | None,
        typer.Option(
            parser=_path, help="Local copy of a built-in task's data: <split>.jsonl/.csv/.parquet files."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute a finished evaluation.")] = False,
    wandb_project: WandbProject = None,
    wandb_entity: WandbEntity = None,
    wandb_group: WandbGroup = None,
    wandb_run_id: WandbRunId = None,
    wandb_tags: WandbTags = None,
    wandb_mode: WandbMode = None,
    wandb_upload_results: WandbUploadResults = None,
    wandb_registry: WandbRegistry = None,
    wandb_table_rows: WandbTableRows = None,
    hf_upload_repo: HfUploadRepo = None,
    hf_upload_dir: HfUploadDir = None,
    context: Annotated[str | None, typer.Option(help="Execution context. [default: local]")] = None,
    config: Annotated[
        Path | None, typer.Option(parser=_path, help="YAML file with any of these options (flags win).")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(parser=_path, help="Load this .env file instead of ./.env.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log details and show tracebacks.")
    ] = False,
) -> None:
    """Evaluate a model on a task (the root command), or run a subcommand."""
    sink_params = dict(locals())
    _setup_logging(verbose)
    load_env(env_file)
    if ctx.invoked_subcommand is not None:
        return
    from eval_framework.registry.progress import set_download_bar_factory
    from eval_framework.reporting import download_bar, progress_bar, stderr, stdout, summary_table
    from eval_framework.runner import evaluate
    from eval_framework.sinks.publish import preflight

    set_download_bar_factory(download_bar)

    parsed_args = parse_llm_args(llm_args) if llm_args else {}
    if checkpoint:
        parsed_args["artifact_name"] = checkpoint
        llm_name = llm_name or "hf"
    if artifact_dir:
        parsed_args["artifact_dir"] = str(artifact_dir)
    flags: dict[str, Any] = {
        "llm_name": llm_name,
        "task_name": task_name,
        "models": models,
        "llm_args": parsed_args or None,
        "num_fewshot": num_fewshot,
        "num_samples": num_samples,
        "subjects": split_list(subjects or None, "subjects"),
        "seed": seed,
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "output_dir": output_dir,
        "task_data_dir": task_data_dir,
        "overwrite": overwrite or None,
        "context": context,
        **_sink_flags(sink_params),
    }
    file_values = read_config_file(config) if config else {}
    cfg = build_config(file_values, flags)
    sinks = cfg.publish_options()
    preflight(sinks)  # a missing extra or token costs seconds, not an evaluation
    _say_on_interrupt(f"whatever finished is saved under {cfg.output_dir}; rerun the same command to resume")
    live = None
    if sinks.wandb is not None:
        from eval_framework.sinks.wandb_sink import LiveRun, say_once

        live = LiveRun(sinks.wandb)
        if live.note:
            say_once(live.note)
    with progress_bar(f"{cfg.llm_name} · {cfg.task_name}") as update:
        outcome = evaluate(cfg, progress=update, hooks=live)
    if outcome.reused:
        stderr.print(f"[dim]Already evaluated; reusing {outcome.bundle_dir} (--overwrite recomputes).[/dim]")
    stdout.print(summary_table(outcome))
    stdout.print(f"Results: {outcome.bundle_dir}")
    if sinks.any:
        from eval_framework import cleanup
        from eval_framework.sinks.publish import upload_command

        cleanup.raise_if_stopped()  # a Ctrl-C that Python dropped on the way still means stop

        _say_on_interrupt(
            f"the evaluation is complete in {outcome.bundle_dir}; finish the export with: "
            f"{upload_command([outcome.bundle_dir], sinks)}"
        )
        _publish_and_report([outcome.bundle_dir], sinks, live)


def _publish_and_report(bundles: list[Path], sinks: Any, live: Any = None) -> None:
    """Publish each bundle; say where it went; one ExportError at the end for what failed."""
    from eval_framework.errors import ExportError
    from eval_framework.reporting import stderr, stdout
    from eval_framework.sinks.publish import publish, upload_command

    failed: list[Path] = []
    messages: list[str] = []
    for bundle_dir in bundles:
        try:
            report = publish(bundle_dir, sinks, live)
        except ExportError as exc:
            failed.append(bundle_dir)
            messages.append(str(exc).split(". The evaluation itself is complete")[0])
            continue
        if report.hf_url:
            stdout.print(f"Hugging Face: {report.hf_url}")
        if report.wandb is not None:
            if report.wandb.url:
                stdout.print(f"W&B run: {report.wandb.url}")
            elif report.wandb.sync_command:
                how = (
                    "was already logged offline (not synced yet)"
                    if report.wandb.already_offline
                    else "logged offline"
                )
                stderr.print(f"W&B run {report.wandb.run_id} {how}; sync it with: "
                             f"{report.wandb.sync_command}")  # fmt: skip
            if report.wandb.pending:
                stderr.print(f"Still to do online ({', '.join(report.wandb.pending)}): "
                             f"{upload_command([bundle_dir], sinks)} --wandb-mode online")  # fmt: skip
    if failed:
        raise ExportError(
            f"{'; '.join(messages)}. The evaluations themselves are complete; finish the export with: "
            f"{upload_command(failed, sinks)}"
        )


@app.command("upload")
def upload_command_cli(
    paths: Annotated[
        list[Path], typer.Argument(parser=_path, help="Bundle directories, or directories holding bundles.")
    ],
    wandb_project: WandbProject = None,
    wandb_entity: WandbEntity = None,
    wandb_group: WandbGroup = None,
    wandb_run_id: WandbRunId = None,
    wandb_tags: WandbTags = None,
    wandb_mode: WandbMode = None,
    wandb_upload_results: WandbUploadResults = None,
    wandb_registry: WandbRegistry = None,
    wandb_table_rows: WandbTableRows = None,
    hf_upload_repo: HfUploadRepo = None,
    hf_upload_dir: HfUploadDir = None,
    config: Annotated[
        Path | None,
        typer.Option(
            parser=_path, help="YAML file with any of these options (flags win; other keys are ignored)."
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

    values = _sink_flags(dict(locals()))
    file_values = _sink_flags(read_config_file(config)) if config else {}
    cfg = build_config(file_values, {"llm_name": "upload", "task_name": "upload", **values})
    sinks = cfg.publish_options()
    if not sinks.any:
        raise ConfigError("nothing to upload to: pass --wandb-project and/or --hf-upload-repo")
    _say_on_interrupt("what was already logged is kept and recorded; rerun the same command to finish")
    if not dry_run:
        from eval_framework.sinks.publish import preflight

        preflight(sinks)
    bundles = find_bundles(paths)
    if wandb_run_id and len(bundles) > 1:
        raise ConfigError("--wandb-run-id names one run: pass exactly one bundle with it")
    if dry_run:
        print(json.dumps([plan(b, sinks) for b in bundles], indent=2))
        return
    finished = [b for b in bundles if Bundle(b).is_complete()]
    skipped = sorted(set(bundles) - set(finished))
    for path in skipped:
        print(f"skipping {path}: {Bundle(path).skip_reason()}", file=sys.stderr)
    if finished:
        _publish_and_report(finished, sinks)
    if skipped:
        from eval_framework.errors import OutputError

        exported = "the others are exported" if finished else "nothing was exported"
        raise OutputError(
            f"{len(skipped)} of {len(bundles)} bundle(s) skipped (see above), {exported}; do what each "
            "line says, then upload again (upload --dry-run shows what each bundle lacks)"
        )


@app.command("tasks")
def tasks_command() -> None:
    """List the built-in tasks with their kind, metrics and language."""
    from rich.table import Table

    from eval_framework.reporting import stdout
    from eval_framework.tasks import list_tasks

    table = Table(title="Built-in tasks (any task YAML file path works too)", title_justify="left")
    table.add_column("task", no_wrap=True)
    table.add_column("shots", justify="right")
    for column in ("few-shot rule", "kind", "metrics", "language", "source", "description"):
        table.add_column(column, overflow="fold")
    for info in list_tasks():
        kind = info.kind
        if info.stop:
            kind += f", stops at {' '.join(repr(s) for s in info.stop)}"
        table.add_row(
            info.name,
            str(info.num_fewshot),
            info.fewshot_rule,
            kind,
            ", ".join(info.metrics),
            info.language,
            info.source,
            info.description,
        )
    stdout.print(table)
    stdout.print(
        "shots: the standard count, used when --num-fewshot is not given. Few-shot rules, prompts "
        "and scoring (as lm-evaluation-harness): docs/tasks.md"
    )


@app.command("resolve")
def resolve_command(
    reference: Annotated[
        str, typer.Argument(help="Checkpoint reference, e.g. wandb-registry-model/llama-sft:v7.")
    ],
    artifact_dir: Annotated[
        Path | None,
        typer.Option(parser=_path, help="Where to keep the checkpoint. [default: WANDB_ARTIFACT_DIR]"),
    ] = None,
    checkpoint_subdir: Annotated[
        str | None, typer.Option(help="Which checkpoint to use when the artifact holds several.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the full identity as JSON.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Show what would be fetched, and where, without fetching.")
    ] = False,
) -> None:
    """Resolve and download a registered checkpoint without evaluating; prints its local path."""
    import contextlib
    import json

    from eval_framework.errors import ConfigError
    from eval_framework.registry.destination import persistent_root
    from eval_framework.registry.resolver import ResolveOptions, Resolver
    from eval_framework.reporting import stdout

    resolver = Resolver(
        options=ResolveOptions(artifact_dir=artifact_dir, checkpoint_subdir=checkpoint_subdir)
    )
    resolver.parse(reference)  # a malformed reference fails before any network call
    if dry_run:
        plan = resolver.plan(reference)
        if json_output:
            print(json.dumps(plan.as_dict(), indent=2))
            return
        info = plan.as_dict()
        aliases = ", ".join(info["aliases"])
        stdout.print(f"{info['qualified_name']} ({aliases}) -> {info['destination']}")
        fetch = len(info["files_to_fetch"])
        stdout.print(f"{info['files']} files, {info['bytes']} bytes; would fetch {fetch} files, "
                     f"{info['bytes_to_fetch']} bytes")  # fmt: skip
        return
    if persistent_root(artifact_dir) is None:
        raise ConfigError(
            "resolve keeps the checkpoint for later use: pass --artifact-dir DIR or set WANDB_ARTIFACT_DIR"
        )
    with contextlib.ExitStack() as stack:
        resolved = resolver.resolve(reference, stack)
    print(json.dumps(resolved.as_dict(), indent=2) if json_output else resolved.path)


@app.command("demo")
def demo_command(
    output_dir: Annotated[Path, typer.Option(parser=_path, help="Where bundles are written.")] = Path(
        "outputs/demo"
    ),
    num_fewshot: Annotated[int, typer.Option(help="Few-shot examples per prompt.")] = 3,
    overwrite: Annotated[bool, typer.Option(help="Recompute finished evaluations.")] = False,
) -> None:
    """Evaluate every shipped tiny-letters checkpoint version offline and compare them."""
    from eval_framework.config import EvalConfig
    from eval_framework.embedded import checkpoint_versions
    from eval_framework.reporting import comparison_table, progress_bar, stdout, summary_table
    from eval_framework.runner import evaluate

    outcomes = []
    for version in checkpoint_versions():
        cfg = EvalConfig(
            llm_name="embedded",
            llm_args={"version": version},
            task_name="tiny-letters",
            num_fewshot=num_fewshot,
            output_dir=output_dir,
            overwrite=overwrite,
        )
        with progress_bar(f"tiny-letters {version}") as update:
            outcome = evaluate(cfg, progress=update)
        outcomes.append((version, outcome))
    stdout.print(summary_table(outcomes[-1][1]))
    stdout.print(comparison_table(outcomes))
    for version, outcome in outcomes:
        stdout.print(f"{version}: {outcome.bundle_dir}")


#: What a user is told when a command is interrupted; each command says what it keeps.
_on_interrupt = ["nothing finished is lost; rerun the same command"]


def _say_on_interrupt(text: str) -> None:
    _on_interrupt[0] = text


def _debug(args: list[str]) -> bool:
    # Read when an error is shown, not at start: .env (loaded by the command) may set it.
    return "-v" in args or "--verbose" in args or os.environ.get("EVAL_FRAMEWORK_DEBUG", "").strip() == "1"


def _path(value: str) -> Path:
    """A path option's value; an empty one (an unset variable in a script) is not the current
    directory."""
    if not value.strip():
        raise typer.BadParameter("is empty; pass a path")
    return Path(value)


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
    return f"{message[:1].lower()}{message[1:]}; see '{command} --help'"


def _stopped(args: list[str], exc: BaseException | None = None) -> int | None:
    """When a stop signal arrived, the outcome is the stop, whatever error it caused on its way
    (an import cut short reads as a missing package, a model call as a model failure)."""
    from eval_framework import cleanup

    signum = cleanup.stopped_by()
    if signum is None:
        return None
    if signum == signal.SIGINT:
        _error(f"interrupted: {_on_interrupt[0]}", args, exc)
        return 130
    _error(f"stopped by SIGTERM: {_on_interrupt[0]}", args, exc)
    return 128 + signum


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by tests)."""
    from eval_framework import cleanup

    args = list(sys.argv[1:] if argv is None else argv)
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

    try:  # from here on, a stop is said in one line whatever it cuts short
        args = expand_multi_value_options(args) if not _names_subcommand(args) else args
        command = typer.main.get_command(app)
        result = command.main(args=args, prog_name="eval_framework", standalone_mode=False)
    except EvalFrameworkError as exc:
        stopped = _stopped(args, exc)
        if stopped is not None:
            return stopped
        _error(str(exc), args, exc)
        return exc.exit_code
    except (click.exceptions.Exit, typer.Exit) as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _click_errors("NoArgsIsHelpError") as exc:
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            print(ctx.get_help())
        print("error: no command given; see 'eval_framework --help'", file=sys.stderr)
        return 2
    except _click_errors("ClickException") as exc:
        _error(_usage_message(exc), args)
        return int(getattr(exc, "exit_code", 2))
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt) as exc:
        _error(f"interrupted: {_on_interrupt[0]}", args, exc)
        return 130
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            _error(f"stopped by SIGTERM: {_on_interrupt[0]}", args)
            return int(exc.code)
        raise
    except OSError as exc:
        stopped = _stopped(args, exc)
        if stopped is not None:
            return stopped
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {exc.filename}" if exc.filename else ""
            advice = f"free space and rerun: {_on_interrupt[0]}"
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
    except Exception as exc:  # a bug: still one line, with the way to the traceback
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
        _error(f"interrupted: {_on_interrupt[0]}", args)
    return code


def _names_subcommand(args: list[str]) -> bool:
    """Whether the command line runs a subcommand. Only the root command takes several values after
    one flag (``--llm-args a=1 b=2``): a subcommand has positional arguments that must stay theirs
    (``upload --wandb-tags nightly out/``)."""
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
        return token in subcommands
    return False


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
