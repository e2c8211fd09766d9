"""The results bundle: one directory per evaluation, the single source of truth.

<output_dir>/<model>__<task>__<k>shot__<n>__<key12>/
    metadata.json   identity, redacted config, timings, environment, links, status
    samples.jsonl   one line per sample, appended as results arrive (the resume point)
    results.json    aggregated metrics with stderr and n, overall and per subject
    eval.log        the run's log
    exports.jsonl   ledger of exports (one line per destination)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from eval_framework.errors import OutputError

SCHEMA_VERSION = 1
METADATA = "metadata.json"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"
LOG = "eval.log"
EXPORTS = "exports.jsonl"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def natural_key(model: Mapping[str, Any], task: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Hash of what determines the results; batch size, paths and credentials stay out."""
    payload = {"model": model, "task": task, "settings": settings}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def slug(text: str, limit: int = 48) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"
    return cleaned[:limit]


def bundle_dirname(
    model_name: str, task_name: str, num_fewshot: int, num_samples: int | None, key: str
) -> str:
    n = "all" if num_samples is None else str(num_samples)
    return f"{slug(model_name)}__{slug(Path(task_name).stem)}__{num_fewshot}shot__{n}__{key[:12]}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and os.replace: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path} is corrupt ({exc.msg}); move it away or rerun with --overwrite") from exc


class Bundle:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @property
    def metadata_path(self) -> Path:
        return self.dir / METADATA

    @property
    def samples_path(self) -> Path:
        return self.dir / SAMPLES

    @property
    def results_path(self) -> Path:
        return self.dir / RESULTS

    @property
    def log_path(self) -> Path:
        return self.dir / LOG

    def exists(self) -> bool:
        return self.metadata_path.is_file()

    def metadata(self) -> dict[str, Any]:
        data = read_json(self.metadata_path)
        version = data.get("schema_version", 0)
        if version > SCHEMA_VERSION:
            raise OutputError(
                f"{self.dir} was written by a newer eval_framework (schema {version}); upgrade to read it"
            )
        return data

    def results(self) -> dict[str, Any]:
        return read_json(self.results_path)

    def is_complete(self) -> bool:
        return self.results_path.is_file() and self.exists() and self.metadata().get("status") == "complete"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Keeps two processes from doing the same work; correctness never depends on it."""
        # Beside the bundle, not inside it: --overwrite moves the bundle directory aside.
        lock = FileLock(str(self.dir.parent / f".{self.dir.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise OutputError(
                f"another process is already evaluating into {self.dir}; wait for it to finish "
                "(rerunning afterwards reuses its results)"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def read_samples(self) -> list[dict[str, Any]]:
        """Finished sample rows. A torn last line (process killed mid-write) is cut off the file."""
        if not self.samples_path.is_file():
            return []
        data = self.samples_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.samples_path.open("r+b") as handle:
                handle.truncate(end)
        rows = []
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise OutputError(
                    f"{self.samples_path}:{number} is corrupt; move the bundle away or rerun with --overwrite"
                ) from exc
        return rows

    def append_samples(self, rows: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        if not text:
            return
        with self.samples_path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def ensure_writable(directory: Path) -> None:
    """Fail before any work if results cannot be written under ``directory``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"cannot write to output directory {directory}: {exc.strerror}; "
            "choose another --output-dir or fix its permissions"
        ) from exc


@contextlib.contextmanager
def replacing(bundle: Bundle) -> Iterator[None]:
    """For --overwrite: keep the old bundle aside until the new one completes, restore it on failure."""
    if not bundle.dir.exists():
        yield
        return
    backup = bundle.dir.with_name(f"{bundle.dir.name}.replaced-{int(time.time())}")
    os.replace(bundle.dir, backup)
    bundle.dir.mkdir(parents=True)
    try:
        yield
    except BaseException:
        shutil.rmtree(bundle.dir, ignore_errors=True)
        os.replace(backup, bundle.dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)
