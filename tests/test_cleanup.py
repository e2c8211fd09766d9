"""Stops (SIGTERM, Ctrl-C) wait for a step that must not be cut in half."""

from __future__ import annotations

import os
import signal

import pytest

from eval_framework import cleanup


@pytest.fixture
def handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_stop_inside_the_block_takes_effect_when_it_ends(handlers, sig, raised):
    steps = []

    def step() -> None:
        with cleanup.stops_deferred():
            os.kill(os.getpid(), sig)
            steps.append("after the signal")  # the block is not cut short

    with cleanup.command_mode(), pytest.raises(raised) as info:
        step()
    assert steps == ["after the signal"]
    if raised is SystemExit:
        assert info.value.code == 143
    cleanup.stopping.clear()


def test_library_code_leaves_the_callers_handlers_alone(handlers):
    """Outside ``command_mode`` (a caller's own process): the caller's SIGTERM handler stays, a
    stop inside a step reaches it once the step is whole, and ``command_mode`` restores it."""
    seen: list[str] = []

    def callers(signum, frame):
        seen.append("caller's handler")

    signal.signal(signal.SIGTERM, callers)
    with cleanup.stops_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append("step finished")
    assert seen == ["step finished", "caller's handler"]
    assert signal.getsignal(signal.SIGTERM) is callers
    with cleanup.command_mode():
        assert signal.getsignal(signal.SIGTERM) is not callers
    assert signal.getsignal(signal.SIGTERM) is callers
    assert not cleanup.stopping.is_set()


def test_without_a_stop_the_block_changes_nothing(handlers):
    before = signal.getsignal(signal.SIGINT)
    with cleanup.stops_deferred():
        assert signal.getsignal(signal.SIGINT) is not before  # Ctrl-C is held meanwhile
    assert signal.getsignal(signal.SIGINT) is before
    assert not cleanup.stopping.is_set()


def test_a_stop_python_dropped_is_acted_on_at_the_next_safe_point(handlers, letters_task, tmp_path):
    """A Ctrl-C that lands in a finaliser is lost as an exception; it is remembered, and the
    evaluation stops before loading the model or scoring the next chunk."""
    from eval_framework.config import EvalConfig
    from eval_framework.runner import evaluate
    from tests.conftest import USER_MODELS

    cleanup.reset()
    cleanup._received.append(signal.SIGINT)  # what the handler records before raising
    config = EvalConfig(llm_name="HashLLM", models=USER_MODELS, task_name=str(letters_task),
                        output_dir=tmp_path / "out")  # fmt: skip
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate(config)
    finally:
        cleanup.reset()
    assert not any((tmp_path / "out").glob("*/samples.jsonl"))


@pytest.mark.parametrize(("code", "says"), [(0, "nothing is lost"), (3, "the error above stands")])
def test_a_stop_after_the_work_is_done_is_said_as_such(code, says):
    import subprocess
    import sys

    script = (
        "import os, signal, time\n"
        "from eval_framework import cleanup\n"
        f"cleanup.finished({code})\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr == f"error: stopped by SIGTERM while exiting: {says}" + proc.stderr.split(says, 1)[1]
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
