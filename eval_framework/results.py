"""The results bundle: one directory per evaluation, the single source of truth.

<output_dir>/<model>__<task>__<k>shot__<n>__<key12>/
    metadata.json          identity, redacted config, timings, environment, links, status
    samples.jsonl          one line per sample, appended as results arrive (the resume point)
    results.json           aggregated metrics with stderr and n, overall and per subject
    eval.log               the run's log
    exports.jsonl          ledger of exports (one line per destination)
    samples.rejected.jsonl sample lines that were damaged and recomputed (kept, never read back)

Every file is read through the models in ``bundle_schema``. A bundle is *complete* only when all
three files are valid and agree (status complete, one valid row per sample, same evaluation
key); anything less is resumed, never silently reused.

``--overwrite`` evaluates into a hidden sibling (``.<name>.overwrite``) and swaps it in only when
it is complete, so the old bundle stays authoritative whatever kills the process; a swap cut
short is finished (or undone) by the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from eval_framework.bundle_io import (
    BundleDamaged,
    atomic_write_text,
    canonical_json,
    read_json_file,
    write_failure,
    write_json,
)
from eval_framework.bundle_migrate import upgraded
from eval_framework.bundle_scan import BadLine, SampleLine, SampleScan, scan_lines
from eval_framework.bundle_schema import MetadataFile, ResultsFile, SampleRow
from eval_framework.bundle_seal import scored_problem, seal_of
from eval_framework.errors import OutputError
from eval_framework.metrics import aggregate

log = logging.getLogger(__name__)

METADATA = "metadata.json"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"
LOG = "eval.log"
EXPORTS = "exports.jsonl"
REJECTED = "samples.rejected.jsonl"
WANDB_DIR = "wandb"
#: What a bundle directory holds: these files and the W&B run directory, nothing else.
BUNDLE_FILES = (METADATA, RESULTS, SAMPLES, REJECTED, LOG, EXPORTS)
BUNDLE_DIRS = (WANDB_DIR,)
OVERWRITE_SUFFIX = ".overwrite"
OLD_SUFFIX = ".old"


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


#: An interrupted atomic write's temporary file (mkstemp's 8 random characters after the name).
_OUR_TEMP = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in BUNDLE_FILES) + r")\.[a-z0-9_]{8}")
#: What the W&B SDK and our staging put under <bundle>/wandb.
_SDK_ENTRY = re.compile(
    r"(?:offline-)?run-\d{8}_\d{6}-.+|latest-run|debug(?:-internal|-cli\..+)?\.log|artifact|sdk-data"
)
_SCANS: dict[tuple[str, int, int, int], SampleScan] = {}
_VERDICTS: dict[tuple[tuple[int, int, int], ...], str | None] = {}


def forget_cached() -> None:
    """Drop remembered scans and verdicts (a command starts afresh: file times are only as fine
    as the filesystem's clock, so an edit between two commands of one process could look unchanged)."""
    _SCANS.clear()
    _VERDICTS.clear()


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

    def metadata(self) -> MetadataFile:
        """metadata.json in the current schema (older bundles migrated on read)."""
        return read_json_file(self.metadata_path, MetadataFile, "metadata")[1]

    def results(self) -> ResultsFile:
        """results.json in the current schema."""
        return read_json_file(self.results_path, ResultsFile, "results")[1]

    def stored_metadata(self) -> dict[str, Any]:
        """metadata.json exactly as stored (what the seal covers), once it reads as valid."""
        return read_json_file(self.metadata_path, MetadataFile, "metadata")[0]

    def stored_results(self) -> dict[str, Any]:
        return read_json_file(self.results_path, ResultsFile, "results")[0]

    def scan_samples(self) -> SampleScan:
        """Every line of samples.jsonl, valid or not (a torn last line is left out: it is the part
        of a row a killed process did not finish; ``truncate_torn_tail`` removes it). Validating
        every row costs about 40 µs; the scan of an unchanged file is remembered, since a publish
        reads the same file several times."""
        try:
            stat = self.samples_path.stat()
        except FileNotFoundError:
            return SampleScan()
        key = (str(self.samples_path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = _SCANS.get(key)
        if cached is None:
            cached = scan_lines(self.samples_path)
            _SCANS.clear()  # one file's rows at a time: they can be large
            _SCANS[key] = cached
        return SampleScan(list(cached.rows), list(cached.bad))

    def truncate_torn_tail(self) -> None:
        """Cut an unfinished last line (a process killed mid-write) so appends start on a new line."""
        if not self.samples_path.is_file():
            return
        data = self.samples_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            log.info("cutting an unfinished last line off %s", self.samples_path)
            with self.samples_path.open("r+b") as handle:
                handle.truncate(end)

    def stored_rows(self) -> list[dict[str, Any]]:
        """The valid sample rows as stored, in file order (a complete bundle has no others)."""
        return [line.row for line in self.scan_samples().rows]

    def samples(self) -> list[SampleRow]:
        """The sample rows in the current schema, in file order; BundleDamaged naming the first
        line that is not a valid row (a finished bundle has none)."""
        scan = self.scan_samples()
        if scan.bad:
            first = scan.bad[0]
            raise BundleDamaged(
                f"{self.samples_path}:{first.number} is not a valid sample row ({first.reason}); rerun the "
                "evaluation: it sets such rows aside and recomputes them"
            )
        return [SampleRow.model_validate(upgraded(line.row, "row")) for line in scan.rows]

    def problems(self, scan: SampleScan | None = None) -> str | None:
        """Why this bundle is not a complete, consistent evaluation, or None when it is one
        (``scan``: the samples, when the caller has read them already). Raises BundleDamaged when
        metadata.json itself cannot be read."""
        blocked = self.blocked()
        if blocked is not None:
            return blocked
        state = self._state()
        if state in _VERDICTS:  # publishing asks several times; checking 14k rows takes a second
            return _VERDICTS[state]
        verdict = self._content_problems(scan)
        _VERDICTS.clear()
        _VERDICTS[state] = verdict
        return verdict

    def _state(self) -> tuple[tuple[int, int, int], ...]:
        """The three files' identity and version: equal states, equal content."""
        states = []
        for path in (self.metadata_path, self.results_path, self.samples_path):
            try:
                stat = path.stat()
            except OSError:
                states.append((0, -1, 0))
            else:
                states.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(states)

    def _content_problems(self, scan: SampleScan | None) -> str | None:
        metadata = self.stored_metadata()  # as written: its version says how rows were scored
        if metadata["status"] != "complete":
            return "its metadata.json says status running: the evaluation did not finish"
        if not self.results_path.is_file():
            return "results.json is missing"
        try:
            results = self.stored_results()
        except BundleDamaged as exc:
            return str(exc).split(";")[0]
        if results["natural_key"] != metadata["natural_key"]:
            return "results.json belongs to another evaluation"
        scan = scan if scan is not None else self.scan_samples()
        if scan.bad:
            first = scan.bad[0]
            return f"{self.samples_path}:{first.number} is not a valid sample row ({first.reason})"
        indices = sorted(line.row["index"] for line in scan.rows)
        if indices != list(range(metadata["task"]["num_samples"])):
            return f"{self.samples_path} does not hold exactly one row per sample"
        metrics = metadata["task"]["metrics"]
        for line in scan.rows:
            why = scored_problem(line.row, metrics, metadata["schema_version"])
            if why is not None:
                return f"{self.samples_path}:{line.number}: {why}"
        rows = sorted((line.row for line in scan.rows), key=lambda r: r["index"])
        # A task without subjects stores an empty "subjects" block that aggregate leaves out.
        if {"subjects": {}, **results["metrics"]} != {"subjects": {}, **aggregate(rows, metrics)}:
            return "results.json does not match its sample rows"
        if metadata.get("seal") is None:
            return "it has no seal (made before bundles were sealed, or its seal was removed); rerun it"
        if metadata.get("seal") != seal_of(metadata, results, rows):
            return "its files were changed after it finished (the seal in metadata.json does not match)"
        return None

    def record_link(self, name: str, url: str) -> None:
        """Where a sink put this bundle (``links.<name>`` in metadata.json; outside the seal)."""
        metadata = self.stored_metadata()
        if metadata.get("links", {}).get(name) != url:
            metadata.setdefault("links", {})[name] = url
            write_json(self.metadata_path, metadata)

    def skip_reason(self) -> str:
        """Why an export skips this bundle, and what to do: one line."""
        why, advice = self.unfinished()
        return f"not a finished evaluation ({why}); {advice}"

    def unfinished(self) -> tuple[str, str]:
        """Why this is not a finished evaluation, and what to do about it."""
        blocked = self.blocked()
        if blocked is not None:
            return blocked, "move it away, then rerun the evaluation"
        try:
            return self.problems() or "complete", "rerun the evaluation to finish or check it"
        except BundleDamaged as exc:
            return str(exc).split(";")[0], "rerun the evaluation with --overwrite"
        except OutputError as exc:  # unreadable, or too new: the error says what to do
            why, _, advice = str(exc).partition("; ")
            return why, advice or "check it"

    def blocked(self) -> str | None:
        """A path of the bundle's layout taken by the wrong kind of thing (a directory named
        samples.jsonl, a file named wandb, a directory where the lock file goes), said as a
        reason; None when the layout is free."""
        for name in BUNDLE_FILES:
            path = self.dir / name
            if path.exists() and not path.is_file():
                return f"{path} is a directory (or other non-file) where a file of the bundle belongs"
        for name in BUNDLE_DIRS:
            path = self.dir / name
            if path.exists() and not path.is_dir():
                return f"{path} is a file where a directory of the bundle belongs"
        lock = self.dir.parent / f".{self.dir.name}.lock"
        if lock.exists() and not lock.is_file():
            return f"{lock} is a directory where the bundle's lock file belongs"
        return None

    def foreign_entries(self) -> list[str]:
        """Top-level entries that eval_framework did not write (a user's notes, a copied file); the
        temporary files of an interrupted write are its own."""
        if not self.dir.is_dir():
            return []
        known = set(BUNDLE_FILES) | set(BUNDLE_DIRS)
        foreign = [
            p.name for p in self.dir.iterdir() if p.name not in known and not _OUR_TEMP.fullmatch(p.name)
        ]
        runs = self.dir / WANDB_DIR
        if runs.is_dir():  # the SDK's run directories and logs, our artifact staging
            foreign += [f"{WANDB_DIR}/{p.name}" for p in runs.iterdir() if not _SDK_ENTRY.fullmatch(p.name)]
        return sorted(foreign)

    def is_complete(self) -> bool:
        """A complete, consistent evaluation (damaged, unreadable or unfinished bundles are not)."""
        if not self.exists():
            return False
        try:
            return self.problems() is None
        except OutputError:
            return False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Keeps two processes from doing the same work; correctness never depends on it."""
        # Beside the bundle, not inside it: --overwrite swaps the bundle directory.
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

    def append_samples(self, rows: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        if not text:
            return
        try:
            with self.samples_path.open("a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_failure(self.samples_path, exc) from exc

    def keep_only(self, lines: list[SampleLine], rejected: list[BadLine]) -> None:
        """Rewrite samples.jsonl with only ``lines``; the rejected lines are kept aside in
        samples.rejected.jsonl, never deleted."""
        if rejected:
            text = "".join(
                json.dumps({"line": b.number, "reason": b.reason, "text": b.text}, ensure_ascii=False) + "\n"
                for b in rejected
            )
            try:
                with (self.dir / REJECTED).open("a", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise write_failure(self.dir / REJECTED, exc) from exc
        body = "".join(json.dumps(line.row, ensure_ascii=False, default=str) + "\n" for line in lines)
        atomic_write_text(self.samples_path, body)

    # --overwrite -------------------------------------------------------------------------------
    @property
    def overwrite_dir(self) -> Path:
        return self.dir.with_name(f".{self.dir.name}{OVERWRITE_SUFFIX}")

    @property
    def _old_dir(self) -> Path:
        return self.dir.with_name(f".{self.dir.name}{OLD_SUFFIX}")

    def unsynced_offline_runs(self) -> list[Path]:
        """W&B runs logged offline into this bundle that ``wandb sync`` has not marked synced."""
        runs = self.dir / "wandb"
        if not runs.is_dir():
            return []
        return sorted(
            log_file.parent
            for log_file in runs.glob("offline-run-*/run-*.wandb")
            if not log_file.with_name(log_file.name + ".synced").exists()
        )

    def promote(self, new: Bundle) -> None:
        """Put the complete bundle ``new`` in this one's place; the old one goes only afterwards."""
        old = self._old_dir
        if old.exists() or old.is_symlink():
            _remove(old)
        if self.dir.exists() or self.dir.is_symlink():
            os.replace(self.dir, old)
        os.replace(new.dir, self.dir)
        _remove(old, quietly=True)

    def finish_interrupted_swap(self) -> None:
        """Complete (or undo) a ``promote`` that a killed process left half done."""
        old, new = self._old_dir, Bundle(self.overwrite_dir)
        if not self.dir.exists() and old.exists():
            if new.is_complete():
                log.info("finishing an interrupted --overwrite of %s", self.dir)
                os.replace(new.dir, self.dir)
            else:
                os.replace(old, self.dir)
        if self.dir.exists() and (old.exists() or old.is_symlink()):
            _remove(old, quietly=True)


def _remove(path: Path, quietly: bool = False) -> None:
    """Remove a bundle directory we replaced; a symlinked one loses the link, never its target."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=quietly)


def is_bundle_dir_name(name: str) -> bool:
    """Hidden siblings (a pending --overwrite, a swap in progress) are not bundles of their own."""
    return not name.startswith(".") and ".replaced-" not in name
