"""``log_mode: multi_task``: one W&B run per checkpoint version (and group) holding every task
exported for it (records: ``wandb_multi_records``).

W&B has no per-key atomic summary update: a resumed run starts from the summary the server had and
sends its whole summary back, so of two writers resuming the run at once the later one replaces
the other's values (the config alike). What makes concurrent exports of different tasks lose
nothing:

1. Each task's record is also stored as its own run file (``eval_framework/tasks/<task>.json``):
   two tasks never share a file, so no writer overwrites another's.
2. Writers on one machine take a lock per run (under ``state_dir``), so they take turns.
3. Online, after writing, the writer reads the run back through the public API (task files,
   summary, config) and, while the summary or config does not hold every task's record exactly,
   resumes the run and writes both again, made from every task file (``REPAIR_ROUNDS`` at most).
   A task file is uploaded before its writer reads back, so the writer whose write lands last
   reads every task file there is, and repairs what an earlier write replaced.

Offline, a run cannot be read back and its summary is sent whole by ``wandb sync``: it carries
every task this machine knows of for the run (its state), and its task file syncs with it, so
the next online export of any task of the run repairs what a sync replaced.
"""

from __future__ import annotations

import contextlib
import random
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval_framework.errors import WandbLogError, brief
from eval_framework.results import Bundle
from eval_framework.sinks import ledger, wandb_multi_state
from eval_framework.sinks.base import Status
from eval_framework.sinks.wandb_mode import choose_mode, say_once
from eval_framework.sinks.wandb_multi_readback import read_run
from eval_framework.sinks.wandb_multi_records import (
    TASKS_KEY,
    TaskRecord,
    build_multi_spec,
    file_name,
    lacking,
    run_config,
    run_summary,
    stale_keys,
    stamped,
)
from eval_framework.sinks.wandb_sink import (
    LogReport,
    _call,
    _log_failure,
    _offline_runs,
    finish,
    log_results,
    offline_dir,
    open_run,
    open_run_or_offline,
    records_digest,
    unsynced_offline_log,
)
from eval_framework.sinks.wandb_spec import Mode, WandbOptions

#: Read-backs (and repairs) after the first write; each repair waits a little longer.
REPAIR_ROUNDS = 5
REPAIR_WAIT_S = 0.5


def sync_command(runs: list[Path]) -> str:
    return shlex.join(["wandb", "sync", *(str(p) for p in runs)])


@dataclass
class Outcome:
    report: LogReport
    existed: bool  #: the run held tasks before this export (updated, not created)


class MultiTaskExport:
    """One bundle's export into its checkpoint version's run."""

    def __init__(self, bundle: Bundle, options: WandbOptions, state_dir: str | None = None) -> None:
        self.bundle, self.options = bundle, options
        self.spec, self.record = build_multi_spec(bundle, options)
        self.task = self.record.task
        self.records = records_digest(self.spec, options)
        root = wandb_multi_state.state_root(state_dir)
        self.state = wandb_multi_state.run_dir(root, self.spec.entity, self.spec.project, self.spec.run_id)
        self.top = {k: v for k, v in self.spec.config.items() if k != TASKS_KEY}

    # ---- status ------------------------------------------------------------------------------
    def unchanged(self, force: bool) -> bool:
        """This very export is in W&B (online, per the ledger) or waits for ``wandb sync``."""
        mode, _ = choose_mode(self.options)
        if mode == "offline" and unsynced_offline_log(self.bundle, self.records) is not None:
            return True  # even with force: a second offline copy would only be synced twice
        return (
            not force
            and mode == "online"
            and ledger.last(self.bundle.dir, "wandb", status="logged", records=self.records) is not None
        )

    def preview(self) -> Status:
        """Without asking the server: updated when this machine knows the run holds a task."""
        if self.unchanged(force=False):
            return "unchanged"
        known = wandb_multi_state.load(self.state) or any(
            ledger.last(
                self.bundle.dir, "wandb", run_id=self.spec.run_id, project=self.spec.project, status=s
            )
            for s in ("logged", "offline")
        )
        return "updated" if known else "created"

    # ---- export ------------------------------------------------------------------------------
    def publish(self, force: bool) -> tuple[Status, str]:
        """Export; the status and where the run is (its page, or the command that syncs it)."""
        if self.unchanged(force):
            return "unchanged", self._where(None)
        mode, note = choose_mode(self.options)
        if note:
            say_once(note)
        if mode == "disabled":
            return self.preview(), self.spec.run_id
        with wandb_multi_state.locked(self.state):
            outcome = self._log(mode)
        status: Status = "updated" if outcome.existed else "created"
        return status, self._where(outcome.report.url)

    def _where(self, url: str | None) -> str:
        """The run's page; offline, the command that syncs every offline run of this run made on
        this machine, in order (the newest, holding every task, last); else the run id."""
        if url:
            return url
        waiting = wandb_multi_state.offline_runs(self.state)
        return sync_command(waiting) if waiting else self.spec.run_id

    def _log(self, mode: Mode) -> Outcome:
        report = LogReport(run_id=self.spec.run_id, mode=mode)
        before = _offline_runs(self.bundle)
        run = None
        try:
            run, mode = open_run_or_offline(self.bundle, self.options, mode, spec=self.spec)
            report.mode = mode
            if mode == "online":
                known, existed = read_run(self.spec).records, bool(run.resumed)
            else:
                known = wandb_multi_state.load(self.state)
                existed = bool(known)
            records = self._write(run, known, mode, report)
            report.url = getattr(run, "url", None) if mode == "online" else None
            report.offline_dir = offline_dir(run)
            finish(run)
            run = None
            if mode == "online":
                records = self._settle(records, report)
            wandb_multi_state.save(self.state, records, report.offline_dir)
        except BaseException as exc:  # ours, the SDK's, a write of our own, or a stop
            self._failed(exc, mode, report, run, before)
            if not isinstance(exc, Exception):
                raise  # a stop (SIGTERM, Ctrl-C) stays a stop
            raise _log_failure(exc, tuple(report.logged)) from exc
        status = "logged" if mode == "online" else "offline"
        ledger.append(self.bundle.dir, self._entry(mode, status, report))
        return Outcome(report, existed)

    def _entry(self, mode: Mode, status: str, report: LogReport, error: str | None = None) -> dict[str, Any]:
        records = None if error else self.records
        entry = ledger.wandb_entry(self.spec, mode, status, report, error=error, records=records)
        return {**entry, "log_mode": "multi_task", "task": self.task}

    def _failed(self, exc: BaseException, mode: Mode, report: LogReport, run: Any, before: set[Path]) -> None:
        with contextlib.suppress(OSError):  # the record is a courtesy; the error is the news
            ledger.append(self.bundle.dir, self._entry(mode, "failed", report, error=brief(exc)))
        if run is not None:
            finish(run, exit_code=1)
        # half an offline log (a run opened here): a sync would send it; the rerun logs anew
        for partial in _offline_runs(self.bundle) - before:
            shutil.rmtree(partial, ignore_errors=True)

    def _write(
        self, run: Any, known: dict[str, TaskRecord], mode: Mode, report: LogReport
    ) -> dict[str, TaskRecord]:
        """The first write: config and summary of every known task with this one replaced, then this
        evaluation's table, artifact and lineage, then its record as a run file."""
        table_key = f"{self.task}/samples"
        prospective = {**known, self.task: stamped(self.record, self.records, {table_key: None})}
        self._put(run, prospective, skip={table_key})
        report.logged += ["config", "summary"]
        log_results(run, self.bundle, self.spec, self.options, mode, report)
        entry = run.summary.get(table_key)
        record = stamped(self.record, self.records, {table_key: entry} if entry is not None else {})
        self._save_record(run, record)
        report.logged.append(f"task record {file_name(self.task)}")
        return {**known, self.task: record}

    def _put(
        self, run: Any, records: dict[str, TaskRecord], skip: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Config and summary made from ``records``; keys of their tasks that a record no longer
        has (a metric no longer exported) removed from the summary the run resumed with. (An
        offline run starts empty, and ``wandb sync`` replaces the server's summary with its own.)"""
        config = run_config(self.top, records)
        _call("config update", lambda: run.config.update(config, allow_val_change=True))
        summary = {k: v for k, v in run_summary(records).items() if k not in skip}
        _call("summary update", lambda: run.summary.update(summary))
        for key in stale_keys(run.summary.keys(), records):
            _call("summary update", lambda key=key: run.summary.__delitem__(key))  # type: ignore[misc]

    @staticmethod
    def _save_record(run: Any, record: TaskRecord) -> None:
        path = Path(run.dir) / file_name(record.task)  # inside the run's files: synced with it offline
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record.to_json() + "\n", encoding="utf-8")
        _call("task record", lambda: run.save(str(path), base_path=run.dir, policy="now"))

    def _settle(self, records: dict[str, TaskRecord], report: LogReport) -> dict[str, TaskRecord]:
        """Read the run back until its summary and config hold every task's record (see the module
        docstring); each repair resumes the run and writes both from every task file."""
        mine = records[self.task]
        for attempt in range(REPAIR_ROUNDS + 1):
            server = read_run(self.spec)
            records = dict(server.records)
            own_file_missing = self.task not in records or records[self.task].exported_at < mine.exported_at
            if own_file_missing:
                records[self.task] = mine
            missing = lacking(server.summary, server.config, records)
            if not missing and not own_file_missing:
                return records
            if attempt == REPAIR_ROUNDS:
                break
            time.sleep(REPAIR_WAIT_S * 2**attempt * (1 + random.random()))
            self._repair(records, save_mine=own_file_missing)
            report.logged.append(f"repair of {', '.join(missing) or self.task}")
        raise WandbLogError(
            f"after {REPAIR_ROUNDS} repairs the run still does not hold exactly the values of "
            f"{', '.join(missing) or self.task}",
            sink="W&B",
            what="W&B multi_task read-back",
            hint="export again (another export of this run kept replacing the summary)",
        )

    def _repair(self, records: dict[str, TaskRecord], save_mine: bool) -> None:
        run = open_run(self.bundle, self.options, "online", self.spec)
        try:
            self._put(run, records)
            if save_mine:
                self._save_record(run, records[self.task])
        except BaseException:
            finish(run, exit_code=1)
            raise
        finish(run)
