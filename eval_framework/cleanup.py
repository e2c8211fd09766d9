"""Remove what a process was writing when it ends: normal exit, exception, SIGINT or SIGTERM.

Temporary checkpoint directories and in-flight ``.part`` files register here. SIGTERM (the
scheduler's stop signal) is turned into ``SystemExit`` after removing them and raising the
stop flag, so downloads in worker threads give up instead of finishing. SIGKILL cannot be
caught; leftovers carry recognisable names and are swept by the next download (part files of
dead processes on this host).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

_registered: set[Path] = set()
_lock = threading.Lock()
_previous_sigterm: object = None
#: Set once SIGTERM arrived: long-running work checks it and stops.
stopping = threading.Event()


def register(path: Path) -> None:
    with _lock:
        _registered.add(path)


def unregister(path: Path) -> None:
    with _lock:
        _registered.discard(path)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_all() -> None:
    with _lock:
        paths = list(_registered)
        _registered.clear()
    for path in paths:
        remove(path)


#: Signals that arrived inside ``stops_deferred`` (acted on when it ends).
_deferred: list[int] = []
_deferring = threading.Event()
#: The stop signals received (SIGINT, SIGTERM): an error a stop caused is reported as the stop.
_received: list[int] = []


def stopped_by() -> int | None:
    """The signal that asked this process to stop, if one did."""
    return _received[-1] if _received else None


def reset() -> None:
    """Forget earlier stops (a new command in the same process, as in tests)."""
    _received.clear()
    _deferred.clear()
    stopping.clear()


def _record(signum: int) -> bool:
    """Remember a stop; False when it is deferred (``stops_deferred`` acts on it at its end)."""
    if _deferring.is_set():
        _deferred.append(signum)
        return False
    _received.append(signum)
    stopping.set()
    return True


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _record(signum):
        raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if not _record(signum):
        return
    remove_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    # Exit like an unhandled SIGTERM would (status 128 + 15), after cleaning up.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """A stop (SIGTERM, Ctrl-C) that arrives inside takes effect when the block ends, not in the
    middle of it: for a step whose half-done state nobody could clean up (a W&B run being
    started, which must exist to be marked preempted). Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_term = signal.getsignal(signal.SIGTERM)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_term is not _on_sigterm:  # not under our handlers: defer SIGTERM for this step only
        signal.signal(signal.SIGTERM, lambda signum, frame: _deferred.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: _deferred.append(signum))
    _deferring.set()
    try:
        yield
    finally:
        _deferring.clear()
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        pending, _deferred[:] = list(_deferred), []
        if signal.SIGTERM in pending:
            if previous_term is _on_sigterm:
                _on_sigterm(signal.SIGTERM, None)
            else:  # the caller's own handling (or the default), now that the step is whole
                os.kill(os.getpid(), signal.SIGTERM)
        if signal.SIGINT in pending:
            _received.append(signal.SIGINT)
            stopping.set()
            raise KeyboardInterrupt


#: Inside ``command_mode``: eval_framework may set what belongs to the whole process.
_owns_process = False


@contextlib.contextmanager
def command_mode() -> Iterator[None]:
    """Inside, eval_framework acts for the process as its command does; everything is restored
    on exit. SIGTERM and Ctrl-C stop an evaluation or download cleanly (partial files removed, a
    W&B run marked preempted), and the caller's own SIGTERM handler is still called. The W&B SDK
    gets the environment it reads for one call at a time: ``WANDB_MODE`` while a run starts,
    ``WANDB_DATA_DIR`` while tables are staged inside the bundle. Outside, library code installs
    no handlers and changes no environment variable: the process belongs to the caller. Signal
    handling needs the main thread; elsewhere only the environment part applies."""
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        with owning_process():
            yield
        return
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), _previous_sigterm
    install_signal_handlers()
    try:
        with owning_process():
            yield
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])
        _previous_sigterm = saved[2]


@contextlib.contextmanager
def owning_process() -> Iterator[None]:
    """The environment part of ``command_mode`` (the command installs its handlers for good)."""
    global _owns_process
    owned = _owns_process
    _owns_process = True
    try:
        yield
    finally:
        _owns_process = owned


@contextlib.contextmanager
def process_environment(**values: str) -> Iterator[bool]:
    """Set environment variables for the duration of one call, inside ``command_mode`` only;
    yields whether they were set (outside, the caller's environment is left as it is)."""
    if not _owns_process:
        yield False
        return
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield True
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def install_signal_handlers() -> None:
    """SIGTERM as below, and Ctrl-C remembered as well as raised: an interrupt Python drops (one that
    lands in a finaliser) is still seen at the next check (``raise_if_stopped``)."""
    install_sigterm_handler()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


class Preempted(SystemExit):
    """The scheduler running this process asked it to stop (a Determined preemption): work stops
    at the next safe point, what finished is saved, and the process exits 0 to be resumed."""

    def __init__(self, reason: str) -> None:
        super().__init__(0)
        self.reason = reason


#: Other sources of a stop request, asked at each safe point (a scheduler's preemption signal).
_stop_checks: list[Callable[[], str | None]] = []


@contextlib.contextmanager
def stop_checks(check: Callable[[], str | None]) -> Iterator[None]:
    """While inside, ``raise_if_stopped`` also asks ``check``: a reason it returns is a stop
    (``Preempted``)."""
    _stop_checks.append(check)
    try:
        yield
    finally:
        _stop_checks.remove(check)


def raise_if_stopped() -> None:
    """At a safe point of long work (between batches, downloaded files, tasks and exports): act on
    a stop that was received but not acted on, or that a stop check reports."""
    signum = stopped_by()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    if signum is not None:
        raise SystemExit(128 + signum)
    raise_if_preempted()


def raise_if_preempted() -> None:
    """``Preempted`` when a stop check reports a stop (signals act through their handlers)."""
    for check in list(_stop_checks):
        reason = check()
        if reason:
            raise Preempted(reason)


def install_sigterm_handler() -> None:
    """Idempotent; only the main thread may set handlers (atexit still applies elsewhere)."""
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous_sigterm = current if current not in (signal.SIG_DFL, signal.SIG_IGN, None) else None
        signal.signal(signal.SIGTERM, _on_sigterm)


def finished(code: int = 0) -> None:
    """The command's work is done and said: a stop from here on only cuts the exit short (the W&B
    SDK's exit handler, interpreter teardown), so it is said as such and the process leaves."""
    if threading.current_thread() is not threading.main_thread():
        return

    def late_stop(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):
            outcome = (
                "nothing is lost (the command had finished and written everything); no need to rerun"
                if code == 0
                else "the error above stands; what was written is kept"
            )
            sys.stderr.write(f"error: stopped by {signal.Signals(signum).name} while exiting: {outcome}\n")
            sys.stderr.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, late_stop)
    signal.signal(signal.SIGTERM, late_stop)


#: Seconds a stopped process gives the W&B SDK to flush (the preemption record) before it exits.
STOP_GRACE_S = 10.0


def flush_wandb(grace_s: float = STOP_GRACE_S) -> None:
    """Let the W&B SDK's service write out the runs' transaction logs (it flushes when it shuts
    down, not at ``run.finish()``), waiting at most ``grace_s``: a hung server must not hold up a
    stop. Copies of a run's log taken after this (a Determined checkpoint) are whole."""
    wandb = sys.modules.get("wandb")
    teardown = getattr(wandb, "teardown", None)
    if callable(teardown):
        flusher = threading.Thread(target=teardown, daemon=True)
        flusher.start()
        flusher.join(grace_s)


def exit_now(code: int) -> None:
    """Leave promptly after SIGTERM or a failure: a scheduler's stop must not wait on services.
    The W&B SDK's exit handler joins its service process, which waits out the service's idle
    timeout (minutes) when the server hangs; it gets ``STOP_GRACE_S`` to flush, then the process
    and the helper processes it started (the SDK's service) exit."""
    remove_all()
    flush_wandb()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    for child in _children():
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)  # after the grace period: its flush has had its chance
    os._exit(code)


def _children() -> list[int]:
    """Processes this one started (Linux /proc; elsewhere none are known)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1:2] == [str(me)]:
            found.append(int(stat.parent.name))
    return found


atexit.register(remove_all)
