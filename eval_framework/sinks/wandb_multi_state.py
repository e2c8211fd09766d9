"""What this machine keeps for each ``log_mode: multi_task`` run: a lock (writers on one machine
take turns, so they never race each other) and the task records it exported or read back.

An offline run sends its summary whole when it is synced, replacing what the server had; so an
offline export writes every task this machine knows of for that run, from these records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from eval_framework import env
from eval_framework.bundle_io import write_json
from eval_framework.errors import ConfigError, ExportError
from eval_framework.sinks.wandb_multi_records import TaskRecord, latest

STATE_SUBDIR = "wandb-multi-task"
STATE_FILE = "tasks.json"
#: How long an export waits for another export of the same run on this machine (an online one may
#: wait up to 15 minutes for its results artifact to upload).
LOCK_WAIT_S = 1800.0


def state_root(configured: str | None) -> Path:
    """``state_dir`` when given, else ``wandb-multi-task`` under EVAL_FRAMEWORK_CACHE_DIR (or the
    user's cache directory)."""
    if configured:
        return Path(configured).expanduser()
    base = env.get("EVAL_FRAMEWORK_CACHE_DIR")
    if base:
        return Path(base).expanduser() / STATE_SUBDIR
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "eval_framework" / STATE_SUBDIR


def run_dir(root: Path, entity: str | None, project: str, run_id: str) -> Path:
    key = hashlib.sha256(f"{entity or ''}/{project}/{run_id}".encode()).hexdigest()[:32]
    return root / key


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold this run's lock (one writer of the run at a time on this machine)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"wandb export: cannot use the multi_task state directory {directory.parent} "
            f"({exc.strerror or exc}); set state_dir to a writable directory"
        ) from exc
    lock = FileLock(str(directory / "lock"))
    try:
        lock.acquire(timeout=LOCK_WAIT_S)
    except Timeout as exc:
        raise ExportError(
            f"another export of this run on this machine held {directory / 'lock'} for {LOCK_WAIT_S:g} s",
            sink="W&B",
            what="W&B multi_task export",
            hint="rerun when it is done",
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _read(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: the server's task files stay the reference
    return data if isinstance(data, dict) else {}


def load(directory: Path) -> dict[str, TaskRecord]:
    """The task records this machine holds for the run."""
    tasks = _read(directory).get("tasks")
    found = (TaskRecord.from_data(d) for d in tasks.values()) if isinstance(tasks, dict) else ()
    return latest(r for r in found if r is not None)


def offline_runs(directory: Path) -> list[Path]:
    """The run's offline runs made on this machine that ``wandb sync`` has not sent, oldest first:
    synced together (``wandb sync`` sends one run's logs in the order they started), the newest,
    which holds every task this machine knew of, is sent last."""
    listed = _read(directory).get("offline_runs")
    paths = [Path(str(p)) for p in listed] if isinstance(listed, list) else []
    return [
        p for p in paths if any(not f.with_name(f.name + ".synced").exists() for f in p.glob("run-*.wandb"))
    ]


def save(directory: Path, records: Mapping[str, TaskRecord], offline_run: Path | None = None) -> None:
    """Keep these records (merged with the ones held: the later export of a task wins), and the
    offline run just made."""
    merged = latest(load(directory).values(), records.values())
    runs = [str(p) for p in offline_runs(directory)] + ([str(offline_run)] if offline_run else [])
    data = {"tasks": {t: json.loads(r.to_json()) for t, r in sorted(merged.items())}, "offline_runs": runs}
    write_json(directory / STATE_FILE, data)
