"""Watching a collection (or checkpoint directories): evaluate each version as it lands.

Every ``interval`` the source is listed; each selected version not yet evaluated on every task is
claimed (``claims.py``) and evaluated with the sweep's step ``evaluate_version`` (one model load;
finished evaluations reused without loading), oldest first. At start the versions already there
are caught up on the same way. Watchers on several machines sharing the output directory split the
work through the claims and the results themselves: a version claimed by a live watcher is
skipped, and one whose bundles are finished is reused, never evaluated again.

A failing poll (the registry unreachable, failing or hanging) is retried with capped exponential
backoff and the watcher goes on; a version that fails (a broken checkpoint) is reported, recorded
beside its claim, and retried on later polls at most ``MAX_ATTEMPTS`` times in all. A stop
(SIGTERM, Ctrl-C) ends the wait between polls at once; during an evaluation what finished is kept;
the claim is released either way.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from eval_framework import cleanup
from eval_framework.config import EvalConfig
from eval_framework.errors import ConfigError, EvalFrameworkError, OutputError, RegistryError
from eval_framework.net import RETRYABLE, Kind, classify
from eval_framework.sweep.claims import Claim, ClaimStore, Holder
from eval_framework.sweep.runner import (
    AfterTaskFn,
    SweepFailed,
    SweepSummary,
    VersionResult,
    evaluate_version,
)
from eval_framework.sweep.versions import Selection, Version, is_local_source, list_versions
from eval_framework.sweep.watch_options import WatchOptions

log = logging.getLogger(__name__)

#: First wait after a failed poll (seconds); it doubles per failure in a row, up to RETRY_MAX_S.
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0
#: Attempts at a version that fails (a broken checkpoint) before watchers stop retrying it.
MAX_ATTEMPTS = 3
#: A new local checkpoint directory is taken once unchanged between two polls, or once its newest
#: file is this old (a trainer may still be writing it).
SETTLE_S = 60.0
#: Where claims live, under the output directory.
CLAIMS_DIR = ".claims"

#: Told of each version once it is finished or failed (e.g. to promote it).
AfterVersionFn = Callable[[VersionResult], None]


class WatchObserver(Protocol):
    """Told as the watch goes (the command prints one line per event)."""

    def found(self, new: Sequence[Version], pending: int, first: bool) -> None: ...

    def version_started(self, position: int, count: int, version: Version) -> None: ...

    def task_progress(self, task: str, done: int, total: int) -> None: ...

    def version_finished(self, result: VersionResult) -> None: ...

    def claimed_elsewhere(self, version: Version, holder: Holder) -> None: ...

    def took_over(self, version: Version, holder: Holder) -> None: ...

    def gave_up(self, version: Version, attempts: int, record: Path) -> None: ...

    def poll_failed(self, error: EvalFrameworkError, wait_s: float) -> None: ...

    def recovered(self, failed_polls: int) -> None: ...

    def waiting(self, next_poll: float) -> None: ...


def transient(error: BaseException | None) -> bool:
    """A registry failure that time may cure (unreachable, failing, hanging), not a bad name."""
    if not isinstance(error, RegistryError):
        return False
    return classify(error).kind in {*RETRYABLE, Kind.UNREACHABLE}


def busy(error: BaseException | None) -> bool:
    """Another process (a sweep, an evaluate, not a watcher) holds a bundle's lock: not a failure
    of the version."""
    from filelock import Timeout

    return isinstance(error, OutputError) and isinstance(error.__cause__, Timeout)


def claim_group(version: Version) -> str:
    """The claims folder of ``version``'s source: the collection's path, or ``local``."""
    if version.local:
        return "local"
    collection = version.reference.rpartition(":")[0]
    return "/".join(re.sub(r"[^\w.-]", "_", part) for part in collection.split("/") if part)


def claim_key(version: Version) -> str:
    """``v7``; a directory: its name and a digest of its absolute path (one claim whatever the
    spelling, two for same-named directories)."""
    if not version.local:
        return version.label
    path = str(Path(version.reference).expanduser().resolve())
    name = re.sub(r"[^\w.-]", "_", Path(path).name) or "root"
    return f"{name}-{hashlib.sha256(path.encode()).hexdigest()[:10]}"


def local_signature(directory: Path) -> tuple[str, float]:
    """A digest of a directory's file names, sizes and times (changes while it is written), and
    the time of its newest file."""
    entries, newest = [], 0.0
    for path in sorted(directory.rglob("*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            entries.append(f"{path.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}")
            newest = max(newest, stat.st_mtime)
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16], newest


class _Watcher:
    """One watch's state between polls."""

    def __init__(
        self,
        source: str,
        configs: Sequence[EvalConfig],
        options: WatchOptions,
        observer: WatchObserver | None,
        after: tuple[AfterTaskFn | None, AfterVersionFn | None],
    ) -> None:
        self.source, self.configs, self.options, self.observer = source, configs, options, observer
        self.after_task, self.after_version = after
        self.root = options.claims_root or Path(configs[0].output_dir) / CLAIMS_DIR
        self.stores: dict[str, ClaimStore] = {}
        self.seen: set[str] = set()
        self.done: dict[str, str] = {}  #: label -> the content signature it was evaluated with
        self.given_up: set[str] = set()
        self.told: dict[str, str] = {}  #: label -> the holder already said to have its claim
        self.signatures: dict[str, str] = {}  #: local directories' signatures at the last poll
        self.results: list[VersionResult] = []
        self.failed_polls = 0
        self.first = True
        self.max_attempts = options.max_attempts or MAX_ATTEMPTS
        self.selection = options.selection

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> SweepSummary:
        while True:
            cleanup.raise_if_stopped()
            wait = self.poll()
            if self.finished() or not self.sleep(wait):
                return SweepSummary(list({r.version.label: r for r in self.results}.values()))

    def poll(self) -> float:
        """List, then evaluate what is pending; the seconds to wait before the next poll."""
        try:
            listed = self.listed()
        except RegistryError as exc:
            if self.first and not transient(exc):
                raise  # a typo or a refused key: waiting would not fix it
            return self.backoff(exc)
        if self.failed_polls and self.observer is not None:
            self.observer.recovered(self.failed_polls)
        self.failed_polls, first, self.first = 0, self.first, False
        pending = self.pending(listed, first)
        for version in pending:
            if self.finished():
                break
            outage = self.take(version)
            if outage is not None:
                return self.backoff(outage)
        return self.options.interval

    def listed(self) -> list[Version]:
        try:
            return list_versions(self.source)
        except ConfigError:
            if self.first:
                raise  # bad input (an alias, a glob matching nothing): said at once
            return []  # directories removed since: nothing to do this time

    def pending(self, listed: list[Version], first: bool) -> list[Version]:
        """The selected versions not yet done, oldest first (local ones once settled)."""
        try:
            chosen = self.selection.apply(listed)
        except ConfigError:  # the selection holds no version yet (since:v9 with v8 the newest)
            chosen = []
        if chosen and self.selection.kind == "last":  # the N newest at start, then every new one
            self.selection = Selection("since", start=chosen[0].label)
        new = [v for v in chosen if v.label not in self.seen]
        self.seen.update(v.label for v in chosen)
        todo = [v for v in chosen if v.label not in self.given_up and not self.is_done(v)]
        ready = [v for v in todo if self.settled(v)]
        if self.observer is not None and (new or first):
            self.observer.found(new, len(todo), first)
        return ready

    def is_done(self, version: Version) -> bool:
        return version.label in self.done and self.done[version.label] == self.signature(version)

    def signature(self, version: Version) -> str:
        """A registry version never changes; a directory's content may."""
        return local_signature(Path(version.reference))[0] if version.local else ""

    def settled(self, version: Version) -> bool:
        if not version.local:
            return True
        signature, newest = local_signature(Path(version.reference))
        before, self.signatures[version.label] = self.signatures.get(version.label), signature
        return before == signature or time.time() - newest >= SETTLE_S

    def store(self, version: Version) -> ClaimStore:
        group = claim_group(version)
        if group not in self.stores:
            self.stores[group] = ClaimStore(self.root / group)
        return self.stores[group]

    # ---- one version ---------------------------------------------------------------------

    def take(self, version: Version) -> EvalFrameworkError | None:
        """Claim and evaluate ``version`` (or skip it: claimed elsewhere, given up); a registry
        outage that cut it short is returned, to back off as for a failed poll."""
        store, key, signature = self.store(version), claim_key(version), self.signature(version)
        attempts = store.failures(key, signature)
        if attempts >= self.max_attempts:
            self.give_up(version, attempts, store.failure_path(key))
            return None
        got = store.try_claim(key)
        if isinstance(got, Holder):
            if self.told.get(version.label) != got.token and self.observer is not None:
                self.observer.claimed_elsewhere(version, got)
            self.told[version.label] = got.token
            return None
        with got:
            result = self.evaluate(version, got)
            if transient(result.error):
                return result.error  # the registry, not the version: no attempt counted
            if busy(result.error):  # a sweep or an evaluate is on it: look again at the next poll
                if self.observer is not None:
                    self.observer.version_finished(result)
                return None
            if result.error is not None:
                attempts = store.record_failure(key, str(result.error), signature)
            else:
                store.clear_failures(key)
                self.done[version.label] = signature
        self.results.append(result)
        if self.observer is not None:
            self.observer.version_finished(result)
        if result.error is not None and attempts >= self.max_attempts:
            self.give_up(version, attempts, store.failure_path(key))
        if self.after_version is not None:
            self.after_version(result)
        return None

    def evaluate(self, version: Version, claim: Claim) -> VersionResult:
        if self.observer is not None:
            if claim.took_over is not None:
                self.observer.took_over(version, claim.took_over)
            self.observer.version_started(1, 1, version)
        progress = self.observer.task_progress if self.observer is not None else None
        result = evaluate_version(version, self.configs, progress, self.after_task)
        if claim.lost:
            log.warning("%s: another watcher took over this version's claim meanwhile (this one "
                        "missed its heartbeats); results stay correct", version.label)  # fmt: skip
        return result

    def give_up(self, version: Version, attempts: int, record: Path) -> None:
        if version.label not in self.given_up and self.observer is not None:
            self.observer.gave_up(version, attempts, record)
        self.given_up.add(version.label)

    # ---- when to stop, how long to wait ----------------------------------------------------

    def finished(self) -> bool:
        """``--until``: the time is up, or version vN is evaluated (or given up)."""
        until = self.options.until
        if until is None:
            return False
        if until.deadline is not None:
            return time.time() >= until.deadline
        handled = [r.version for r in self.results if r.version.label in {*self.done, *self.given_up}]
        return any(v.number is not None and v.number >= (until.version or 0) for v in handled)

    def backoff(self, error: EvalFrameworkError) -> float:
        """Capped exponential backoff with jitter (watchers of one server do not retry in step)."""
        self.failed_polls += 1
        window = min(RETRY_MAX_S, RETRY_FIRST_S * 2.0 ** (self.failed_polls - 1))
        wait = window * random.uniform(0.5, 1.0)
        if self.observer is not None:
            self.observer.poll_failed(error, wait)
        return wait

    def sleep(self, seconds: float) -> bool:
        """Wait for the next poll; a stop ends the wait at once. False when --until's time came."""
        deadline = self.options.until.deadline if self.options.until else None
        end = time.time() + seconds if deadline is None else min(time.time() + seconds, deadline)
        if self.observer is not None:
            self.observer.waiting(end)
        while (left := end - time.time()) > 0:
            cleanup.stopping.wait(min(left, 1.0))
            cleanup.raise_if_stopped()
        return deadline is None or time.time() < deadline


def watch(
    source: str,
    configs: Sequence[EvalConfig],
    options: WatchOptions | None = None,
    observer: WatchObserver | None = None,
    after_task: AfterTaskFn | None = None,
    after_version: AfterVersionFn | None = None,
) -> SweepSummary:
    """Evaluate each version of ``source`` as it lands (and those already there), until
    ``options.until``, or until stopped. ``after_task`` is told of each finished evaluation (to
    export it), ``after_version`` of each version once evaluated or failed (to promote it). Returns
    each version's last result; a stop is raised (SystemExit, KeyboardInterrupt) with the claim
    released."""
    if not configs:
        raise ConfigError("watch needs at least one task: pass --task-name")
    options = options or WatchOptions()
    if options.until is not None and options.until.version is not None and is_local_source(source):
        raise ConfigError(f"--until v{options.until.version} names a registry version, and {source!r} "
                          "is local; give a duration or a time")  # fmt: skip
    return _Watcher(source, configs, options, observer, (after_task, after_version)).run()


class WatchFailed(SweepFailed):
    """Versions failed (each said as it failed); the exit code is the first failure's."""

    @staticmethod
    def message(summary: SweepSummary, first: EvalFrameworkError, which: str) -> str:
        failed = summary.failed
        why = f"{which} failed: {first}" if len(failed) == 1 else f"{len(failed)} versions failed ({which})"
        return (
            f"{why}; fix the cause and evaluate it with 'eval_framework sweep' (finished evaluations "
            "are reused), or delete its .failed.json under the output dir's .claims for watchers to retry it"
        )
