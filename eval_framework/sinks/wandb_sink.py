"""Log bundles to W&B: one run per evaluation, grouped by checkpoint, with lineage and results.

The same ``log_bundle`` serves live logging (the run was opened when the evaluation started, so a
preemption is recorded on it) and ``eval_framework upload`` (the run is opened here). The run id
comes from the evaluation's identity, so repeats update one run.

Online-only calls (``use_artifact`` of the checkpoint version, linking into a registry) cannot be
made by an offline run; they are recorded as pending in the bundle's export ledger and made by a
later online ``upload`` of the same bundle, which resumes the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eval_framework import cleanup, retry_policy, wandb_server
from eval_framework.errors import (
    ConfigError,
    EvalFrameworkError,
    ExportError,
    WandbLogError,
    brief,
    missing_extra,
)
from eval_framework.net import RETRYABLE, Failure, Kind, advice, classify
from eval_framework.results import Bundle
from eval_framework.sinks import ledger, wandb_mode
from eval_framework.sinks.wandb_mode import KEY_REJECTED, choose_mode, say_once
from eval_framework.sinks.wandb_spec import (
    RESULTS_ARTIFACT_TYPE,
    WANDB_SUBDIR,
    Mode,
    RunSpec,
    WandbOptions,
    build_spec,
    stage_artifact_files,
    table_rows,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Attempts and the cap on the wait between them, for every W&B call; tests set the wait to 0.
ATTEMPTS = 4
RETRY_WAIT_MAX = 30.0


RETRYABLE_OR_REACH = RETRYABLE | {Kind.UNREACHABLE, Kind.AUTH}


@dataclass
class LogReport:
    """What one ``log_bundle`` did; ``pending`` lists what an online upload still has to do."""

    run_id: str
    mode: Mode
    url: str | None = None
    offline_dir: Path | None = None
    logged: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    #: the same content was logged offline before and that run is not synced yet: nothing new
    already_offline: bool = False

    @property
    def sync_command(self) -> str | None:
        return f"wandb sync {shlex.quote(str(self.offline_dir))}" if self.offline_dir else None


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise missing_extra("wandb", "wandb", ConfigError) from exc
    return wandb


def _describe(failure: Failure) -> str:
    return advice(failure, "the W&B server", wandb_server.base_url(), "WANDB_BASE_URL", "WANDB_API_KEY")


def _transient(exc: BaseException) -> bool:
    """Only what another attempt can change: dropped connections, timeouts, 408/429/5xx. Our own
    errors, usage errors and programming errors (a KeyError) are not retried."""
    if isinstance(exc, EvalFrameworkError) or not isinstance(exc, Exception):
        return False
    wandb = _wandb()
    if isinstance(exc, wandb.errors.UsageError | wandb.errors.AuthenticationError):
        return False
    if not isinstance(exc, wandb.errors.Error | OSError):  # a bug (KeyError, TypeError, ...)
        return False
    return classify(exc).retryable


#: Seconds an online run waits for its results artifact to be uploaded and committed (the SDK's
#: service retries failed requests inside it).
ARTIFACT_UPLOAD_WAIT_S = 900


def _call(what: str, fn: Callable[[], T], hint: str = "", attempts: int = ATTEMPTS) -> T:
    """One W&B call with capped exponential backoff on transient failures; ``hint`` says what
    to check when it fails for good."""
    try:
        return retry_policy.call(fn, retry_policy.Policy(_transient, attempts, RETRY_WAIT_MAX))
    except Exception as exc:
        failure = classify(exc)
        if failure.kind in (Kind.OTHER, Kind.NOT_FOUND, Kind.CLIENT):
            detail = brief(exc)
        else:
            detail = _describe(failure)
        raise WandbLogError(
            detail,
            sink="W&B",
            what=f"W&B {what}",
            hint=hint if failure.kind not in RETRYABLE_OR_REACH else "",
            retried=_transient(exc) and attempts > 1,
        ) from exc


def check_server(attempts: int = ATTEMPTS) -> Failure | None:
    """``wandb_server.check`` with this module's retry policy (waits capped at RETRY_WAIT_MAX)."""
    return wandb_server.check(attempts, RETRY_WAIT_MAX)


def open_run(bundle: Bundle, options: WandbOptions, mode: Mode, spec: RunSpec | None = None) -> Any:
    """``wandb.init`` for this bundle's run (resuming it if it exists). Tried once: the SDK retries
    inside its own init timeout, and after a failed start it keeps the run id registered, so a
    second start in this process could only fail with "run ID ... is in use"; the SDK's service is
    shut down after a failure (when no other run is open) so that a later start is a clean one."""
    wandb = _wandb()
    spec = spec or build_spec(bundle, options)
    run_dir = bundle.dir  # the SDK adds the wandb/ part (WANDB_SUBDIR)
    settings = wandb.Settings(
        silent=True,
        console="off",
        disable_git=True,
        disable_code=True,
        save_code=False,
        x_disable_meta=True,  # command line args could hold secrets; environment is in the bundle
        x_disable_stats=True,
        x_save_requirements=False,
    )
    try:
        # The SDK's process-wide settings (made at its first call) decide whether its own telemetry
        # is sent: an offline run must not start them online (a server that rejected the key would
        # be sent telemetry, and its refusals printed). Outside command_mode the caller's wins.
        with cleanup.process_environment(WANDB_MODE=mode):
            return _start(wandb, spec, run_dir, mode, settings)
    except WandbLogError:
        if getattr(wandb, "run", None) is None:
            with contextlib.suppress(Exception):
                wandb.teardown()
        raise


def _start(wandb: Any, spec: RunSpec, run_dir: Path, mode: Mode, settings: Any) -> Any:
    """One ``wandb.init`` (see ``open_run``)."""
    return _call(
        "run start",
        lambda: wandb.init(
            project=spec.project,
            entity=spec.entity,
            id=spec.run_id,
            resume="allow",
            group=spec.group,
            job_type=spec.job_type,
            name=spec.name,
            tags=list(spec.tags),
            notes=spec.notes,
            config=spec.config,
            dir=str(run_dir),
            mode=mode,
            settings=settings,
            reinit="create_new",
        ),
        attempts=1,
    )


def open_run_or_offline(
    bundle: Bundle, options: WandbOptions, mode: Mode, attempts: int = ATTEMPTS, spec: RunSpec | None = None
) -> tuple[Any, Mode]:
    """Open the run (``spec``'s, else the bundle's own). Online, the server is probed first
    (``check_server``, ``attempts`` probes): a server that cannot be reached fails in seconds
    instead of the SDK's init timeout; a key the server rejects means logging offline (said once),
    not losing the run."""
    if mode == "online":
        failure = check_server(attempts)
        if failure is not None and failure.kind is not Kind.AUTH:
            raise WandbLogError(_describe(failure), sink="W&B", what="W&B run start")
        if failure is None:
            try:
                return open_run(bundle, options, mode, spec), mode
            except WandbLogError as exc:
                if classify(exc.__cause__ or exc).kind is not Kind.AUTH:
                    raise
        wandb_mode.rejected_keys.add(wandb_mode.key_hash())
        say_once(KEY_REJECTED)
        mode = "offline"
    return open_run(bundle, options, mode, spec), mode


def offline_dir(run: Any) -> Path | None:
    try:
        # absolute: the sync command and the ledger must work from any working directory
        return Path(run.dir).parent.resolve() if run.settings._offline else None
    except AttributeError:
        return None


def _sdk_staging_in(bundle: Bundle) -> contextlib.AbstractContextManager[bool]:
    """The SDK copies logged tables into a staging dir under ``WANDB_DATA_DIR`` (the user's home by
    default) until they are uploaded; an offline run is synced later, maybe from another machine,
    so the command stages them inside the bundle like the other artifact files. (The SDK reads
    that directory from the environment only; a Python API caller outside ``command_mode``
    keeps its own.)"""
    return cleanup.process_environment(WANDB_DATA_DIR=str(bundle.dir / WANDB_SUBDIR / "sdk-data"))


def apply(run: Any, bundle: Bundle, options: WandbOptions, mode: Mode, report: LogReport) -> RunSpec:
    """Write the bundle's records into an open run: config, summary, table, results artifact,
    lineage and registry link (the last two online only)."""
    spec = build_spec(bundle, options)
    _call("config update", lambda: run.config.update(spec.config, allow_val_change=True))
    run.notes = spec.notes
    _call("summary update", lambda: run.summary.update(spec.summary))
    report.logged += ["config", "summary"]
    log_results(run, bundle, spec, options, mode, report)
    return spec


def log_results(run: Any, bundle: Bundle, spec: RunSpec, options: WandbOptions, mode: Mode,
                report: LogReport) -> None:  # fmt: skip
    """What one evaluation adds to a run besides config and summary (whether the run holds one
    task, or every task of a checkpoint version): the samples table, the results artifact, lineage
    and the registry link (the last two online only)."""
    wandb = _wandb()
    columns, rows = table_rows(bundle, options.table_rows)
    table = wandb.Table(columns=columns, data=rows)
    with _sdk_staging_in(bundle):
        _call("samples table", lambda: run.log({f"{spec.task}/samples": table}))
    report.logged.append("samples table")
    artifact = None
    if options.upload_results:
        artifact = wandb.Artifact(
            spec.artifact_name, type=RESULTS_ARTIFACT_TYPE, metadata=spec.artifact_metadata
        )
        for name, path in stage_artifact_files(bundle).items():
            artifact.add_file(str(path), name=name, policy="immutable")
        with _sdk_staging_in(bundle):
            artifact.add(wandb.Table(columns=columns, data=rows), "samples_table")
        aliases = [spec.artifact_alias]
        _call("results artifact", lambda: run.log_artifact(artifact, aliases=aliases))
        if mode == "online":
            # log_artifact only queues the upload; without this wait a failed upload would be
            # reported as logged (the SDK says nothing when the run finishes).
            _call("results artifact upload", lambda: artifact.wait(ARTIFACT_UPLOAD_WAIT_S), attempts=1)
        report.logged.append(f"results artifact {spec.artifact_name}:{spec.artifact_alias}")
    online = mode == "online"
    inputs = [spec.checkpoint.qualified_name] if spec.checkpoint.qualified_name else []
    inputs += list(options.extra_inputs())
    for name in inputs:
        if online:
            # The exact version (never a moving alias) becomes an input of the run.
            _call(f"lineage to {name}", lambda name=name: run.use_artifact(name),  # type: ignore[misc]
                  hint="check the checkpoint reference and WANDB_ADDITIONAL_ARTIFACT_REFERENCES")  # fmt: skip
            report.logged.append(f"lineage {name}")
        else:
            report.pending.append(f"lineage {name}")
    if options.registry and artifact is not None:
        target = registry_target(options.registry)
        if online:
            _call("registry link", lambda: run.link_artifact(artifact, target),
                  hint=f"check that --wandb-registry names a registry of your organization ({target}) "
                  "that you may link into")  # fmt: skip
            report.logged.append(f"link {target}")
        else:
            report.pending.append("registry link")


def registry_target(registry: str) -> str:
    """``--wandb-registry evals`` or ``evals/<collection>``; the default collection is 'eval-results'."""
    name, _, collection = registry.partition("/")
    name = name.removeprefix("wandb-registry-")
    return f"wandb-registry-{name}/{collection or 'eval-results'}"


def finish(run: Any, exit_code: int = 0) -> None:
    try:
        run.finish(exit_code=exit_code)
    except Exception as exc:  # a failed flush must not hide the evaluation's own outcome  # noqa: BLE001
        # after a failure (exit code 1) that failure is the news; this one is its echo
        log.log(logging.WARNING if exit_code == 0 else logging.INFO, "W&B run.finish failed: %s",
                brief(exc, with_type=True))  # fmt: skip


def log_bundle(
    bundle_dir: Path, options: WandbOptions, run: Any | None = None, mode: Mode | None = None
) -> LogReport:
    """Log one finished bundle into its run (opened here unless ``run`` is given) and record the
    outcome in the bundle's export ledger. Raises WandbLogError naming what was not logged."""
    bundle = Bundle(bundle_dir)
    if not bundle.is_complete():
        raise ConfigError(f"{bundle_dir} is not a finished evaluation bundle; finish or rerun it first")
    if mode is None:
        mode, note = choose_mode(options)
        if note:
            say_once(note)
    spec = build_spec(bundle, options)
    report = LogReport(run_id=spec.run_id, mode=mode)
    records = records_digest(spec, options)
    if mode == "disabled" or (run is None and _already_offline(bundle, report, records)):
        return report
    own = run is None
    before = _offline_runs(bundle) if own else set()
    try:
        if run is None:
            run, mode = open_run_or_offline(bundle, options, mode)
            report.mode = mode
        apply(run, bundle, options, mode, report)
        report.url = getattr(run, "url", None) if mode == "online" else None
        report.offline_dir = offline_dir(run)
    except BaseException as exc:  # ours, the SDK's, a write of our own (a full disk), or a stop
        with contextlib.suppress(OSError):  # the record is a courtesy; the error below is the news
            ledger.append(bundle.dir, ledger.wandb_entry(spec, mode, "failed", report, error=brief(exc)))
        if own:
            if run is not None:
                finish(run, exit_code=1)
            # half a log (a run opened here, even one whose start was cut short): a sync would
            # send it; the rerun logs anew
            for partial in _offline_runs(bundle) - before:
                shutil.rmtree(partial, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise  # a stop (SIGTERM, Ctrl-C) stays a stop
        raise _log_failure(exc, tuple(report.logged)) from exc
    if own:
        finish(run)
    status = "logged" if mode == "online" else "offline"
    ledger.append(bundle.dir, ledger.wandb_entry(spec, mode, status, report, records=records))
    return report


def _already_offline(bundle: Bundle, report: LogReport, records: str) -> bool:
    """Offline, a log equal to one waiting for ``wandb sync`` adds nothing (a second offline copy
    would only be synced, and counted, twice): the report points at it, and at what that log left
    for an online upload."""
    waiting = unsynced_offline_log(bundle, records) if report.mode == "offline" else None
    if waiting is not None:
        report.offline_dir, report.already_offline = waiting, True
        entry = ledger.last(bundle.dir, "wandb", status="offline", records=records) or {}
        report.pending = [str(p) for p in entry.get("pending") or []]
    return waiting is not None


def _log_failure(exc: Exception, logged: tuple[str, ...]) -> WandbLogError:
    """A failed log as one WandbLogError, saying what got through before it."""
    if isinstance(exc, ExportError) and not exc.failures:
        return WandbLogError(exc.why, sink="W&B", what=exc.what, hint=exc.hint, retried=exc.retried,
                             logged=logged)  # fmt: skip
    if isinstance(exc, EvalFrameworkError):  # says what failed itself
        return WandbLogError(brief(exc, 600), sink="W&B", logged=logged)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return WandbLogError(brief(exc, with_type=True), sink="W&B", what="W&B logging",
                         hint="free space first" if full else "", logged=logged)  # fmt: skip


def records_digest(spec: RunSpec, options: WandbOptions) -> str:
    """What a log of this bundle sends (run, records, artifact choices), as one digest: equal
    digests mean an equal log."""
    sent = {"spec": dataclasses.asdict(spec), "options": {**dataclasses.asdict(options), "mode": None}}
    return hashlib.sha256(json.dumps(sent, sort_keys=True, default=str).encode()).hexdigest()


def _offline_runs(bundle: Bundle) -> set[Path]:
    return set((bundle.dir / "wandb").glob("offline-run-*"))


def unsynced_offline_log(bundle: Bundle, records: str) -> Path | None:
    """The offline run that already holds exactly this log (same run, records, tags, artifact
    choices) while ``wandb sync`` has not sent it; None when there is none (or it was synced,
    moved or deleted)."""
    entry = ledger.last(bundle.dir, "wandb", status="offline", records=records)
    if entry is None or not entry.get("offline_dir"):
        return None
    recorded = Path(str(entry["offline_dir"]))
    unsynced = {p.resolve() for p in bundle.unsynced_offline_runs()}
    return recorded if recorded.resolve() in unsynced else None
