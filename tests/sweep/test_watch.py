"""``watch``: versions evaluated as they land (the fake W&B server, the real SDK over HTTP), exactly
once across two watcher processes sharing the output dir, a dead watcher's claim taken over, a
registry outage ridden out, SIGTERM between polls and during an evaluation, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from eval_framework.config import EvalConfig
from eval_framework.sweep import watch as watch_module
from eval_framework.sweep.claims import ClaimStore
from eval_framework.sweep.versions import list_versions
from eval_framework.sweep.watch import CLAIMS_DIR, claim_group, claim_key, watch
from eval_framework.sweep.watch_options import Until, WatchOptions
from tests.registry.conftest import fake_wandb, s3, s3_server, wandb_http  # noqa: F401  (fixtures)
from tests.registry.test_resolver import _register_shipped

MODELS = Path(__file__).parent / "sweep_models.py"
ROOT = Path(__file__).parents[2]
COUNTING = ("--models", str(MODELS), "--llm-name", "CountingLLM")
LETTERS = ("--task-name", "tiny-letters", "--num-samples", "6", "--output-dir", "out")


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "model.log"
    return path.read_text().splitlines() if path.exists() else []


def _loads(tmp_path: Path) -> list[str]:
    return [line for line in _log(tmp_path) if line.startswith("load")]


def _complete(tmp_path: Path) -> Counter[str]:
    """Complete bundles by what they evaluated: the registry version (vN) or the directory name."""
    found: Counter[str] = Counter()
    for meta_path in (tmp_path / "out").glob("*/metadata.json"):
        meta = json.loads(meta_path.read_text())
        if meta.get("status") != "complete":
            continue
        artifact = (meta["model"]["identity"] or {}).get("artifact")
        checkpoint = meta["config"]["llm_args"].get("checkpoint")
        found[artifact["qualified_name"].rpartition(":")[2] if artifact else Path(checkpoint).name] += 1
    return found


def _claims(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "out" / CLAIMS_DIR).rglob("*.json")) if (tmp_path / "out").exists() else []


def _when(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def counting(tmp_path, monkeypatch):
    monkeypatch.setenv("EF_SWEEP_LOG", str(tmp_path / "model.log"))


@pytest.fixture
def runs(tmp_path, counting) -> Path:
    """Two local checkpoints, written long ago (settled: no trainer is writing them)."""
    root = tmp_path / "runs"
    for step in ("step-1", "step-2"):
        (root / step).mkdir(parents=True)
        (root / step / "config.json").write_text(json.dumps({"step": step}))
        os.utime(root / step / "config.json", (time.time() - 3600, time.time() - 3600))
    return root


def _trainer(tmp_path: Path, steps: list[Callable[[], None]]) -> threading.Thread:
    """A trainer registering versions while the watcher runs: each step once the watcher has
    finished the version before it (a step is done anyway after a minute, so the watch ends)."""

    def run() -> None:
        for done, step in enumerate(steps, start=1):
            _when(lambda done=done: sum(_complete(tmp_path).values()) >= done)
            step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_versions_are_evaluated_as_they_land(cli, fake_wandb, tmp_path, counting):  # noqa: F811
    _register_shipped(fake_wandb, "tiny", "v0")
    steps = [
        lambda: _register_shipped(fake_wandb, "tiny", "v1"),
        lambda: _register_shipped(fake_wandb, "tiny", "v2"),
    ]
    trainer = _trainer(tmp_path, steps)
    result = cli("watch", "tiny", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "v2")
    trainer.join(5)
    assert result.code == 0, result.err
    assert _complete(tmp_path) == {"v0": 1, "v1": 1, "v2": 1}
    assert len(_loads(tmp_path)) == 3  # one model load per version, none repeated
    assert "watching tiny: 1 version(s), 1 to look at" in result.err
    assert "new version v1" in result.err
    assert "new version v2 (prod)" in result.err
    assert "v2 (prod): tiny-letters acc" in result.err
    assert "Watch: 3 version(s) x 1 task(s): 3 evaluated" in result.out
    assert _claims(tmp_path) == []  # every claim released


def _watcher(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "eval_framework", "watch", *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_two_watcher_processes_evaluate_each_version_once(fake_wandb, tmp_path, counting):  # noqa: F811
    for shipped in ("v0", "v1", "v2"):
        _register_shipped(fake_wandb, "tiny", shipped)
    args = ("tiny", *COUNTING, "--task-name", "tiny-letters,tiny-letters-gen", "--num-samples", "6",
            "--output-dir", "out", "--interval", "0.2", "--until", "v2")  # fmt: skip
    watchers = [_watcher(tmp_path, *args) for _ in range(2)]
    outputs = [w.communicate(timeout=180) for w in watchers]
    assert [w.returncode for w in watchers] == [0, 0], outputs
    assert _complete(tmp_path) == {"v0": 2, "v1": 2, "v2": 2}  # two tasks each
    log = _log(tmp_path)
    # the checkpoints are all called hf: each request is made once per version, three in all
    assert len([line for line in log if line.startswith("load")]) == 3, log
    requests = Counter(line for line in log if not line.startswith("load"))
    assert requests, log
    assert set(requests.values()) == {3}, requests
    assert _claims(tmp_path) == []


def test_last_n_is_the_newest_at_start_then_every_new_one(cli, fake_wandb, tmp_path, counting):  # noqa: F811
    for shipped in ("v0", "v1"):
        _register_shipped(fake_wandb, "tiny", shipped)

    def two_at_once() -> None:  # two versions land between two polls
        _register_shipped(fake_wandb, "tiny", "v2")
        _register_shipped(fake_wandb, "tiny", "v2")

    trainer = _trainer(tmp_path, [two_at_once])
    result = cli("watch", "tiny", *COUNTING, *LETTERS, "--versions", "last:1", "--interval", "0.2",
                 "--until", "v3")  # fmt: skip
    trainer.join(5)
    assert result.code == 0, result.err
    assert "watching tiny: 1 version(s), 1 to look at" in result.err
    assert _complete(tmp_path) == {"v1": 1, "v2": 1, "v3": 1}  # v0 was not among the newest at start


def test_a_dead_watchers_stale_claim_is_taken_over(cli, runs, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first = list_versions(str(runs / "step-*"))[0]
    store = ClaimStore(tmp_path / "out" / CLAIMS_DIR / claim_group(first))
    store.directory.mkdir(parents=True)
    record = {"host": "gone-host", "pid": dead.pid, "started": "2026-01-01T00:00:00+00:00", "token": "x"}
    store.path(claim_key(first)).write_text(json.dumps(record))
    os.utime(store.path(claim_key(first)), (time.time() - 3600, time.time() - 3600))  # no heartbeat for 1 h
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "3s")
    assert result.code == 0, result.err
    assert _complete(tmp_path) == {"step-1": 1, "step-2": 1}
    assert _loads(tmp_path) == ["load step-1", "load step-2"]
    assert "claimed by" not in result.err
    assert "step-1: took over the claim of host gone-host (pid " in result.err
    assert _claims(tmp_path) == []


def test_a_live_claim_is_skipped_until_released(cli, runs, tmp_path):
    first = list_versions(str(runs / "step-*"))[0]
    store = ClaimStore(tmp_path / "out" / CLAIMS_DIR / claim_group(first))
    claim = store.try_claim(claim_key(first))  # another watcher, alive, on step-1
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "2s")
    assert result.code == 0, result.err
    assert "runs/step-1: skipped: claimed by host" in result.err
    assert result.err.count("skipped: claimed by") == 1  # said once, not at every poll
    assert _complete(tmp_path) == {"step-2": 1}
    claim.release()


@pytest.mark.parametrize("outage", ["500", "hang"])
def test_a_registry_outage_is_ridden_out(cli, fake_wandb, tmp_path, counting, monkeypatch, outage):  # noqa: F811
    monkeypatch.setattr(watch_module, "RETRY_FIRST_S", 0.05)
    monkeypatch.setattr(watch_module, "RETRY_MAX_S", 0.2)
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS", "0.2")
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "1")
    server = fake_wandb.server
    _register_shipped(fake_wandb, "tiny", "v0")

    def go_down_then_recover() -> None:
        server.after_login = outage
        _register_shipped(fake_wandb, "tiny", "v1")  # registered during the outage
        failing = len(server.operations)
        _when(lambda: len(server.operations) >= failing + 4)  # a few polls failed
        server.after_login = "ok"
        server.release.set()  # end the stalled answers
        time.sleep(0.1)
        server.release.clear()

    trainer = _trainer(tmp_path, [go_down_then_recover])
    result = cli("watch", "tiny", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "v1")
    trainer.join(5)
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: poll failed")]
    assert warnings, result.err
    assert all("retrying in" in line for line in warnings)
    assert "W&B request for wandb-registry-model/tiny" in warnings[0]
    assert "polling tiny works again (after " in result.err
    assert _complete(tmp_path) == {"v0": 1, "v1": 1}
    assert len(_loads(tmp_path)) == 2


def test_sigterm_between_polls_stops_at_once(runs, tmp_path):
    watcher = _watcher(tmp_path, "runs/step-*", *COUNTING, *LETTERS, "--interval", "1h")
    timer = threading.Timer(120, watcher.kill)  # a watcher that never gets there fails, not hangs
    timer.start()
    try:
        assert watcher.stderr is not None
        seen = []
        while not any("step-2: tiny-letters acc" in line for line in seen):
            line = watcher.stderr.readline()
            assert line, seen
            seen.append(line)
        time.sleep(0.3)  # now waiting for the next poll
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=30)
    finally:
        timer.cancel()
    assert watcher.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM: whatever finished is saved")
    assert _complete(tmp_path) == {"step-1": 1, "step-2": 1}
    assert _claims(tmp_path) == []


def test_sigterm_during_an_evaluation_releases_the_claim(cli, runs, tmp_path, monkeypatch):
    monkeypatch.setenv("EF_SWEEP_STOP_AT", "step-2")  # SIGTERM as step-2's model loads
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--interval", "0.2")
    assert result.code == 143, result.err
    assert "stopped by SIGTERM" in result.err
    assert _complete(tmp_path) == {"step-1": 1}
    assert (tmp_path / "out" / CLAIMS_DIR / "local").is_dir()  # step-2 was claimed ...
    assert _claims(tmp_path) == []  # ... and released on the way out


def test_a_broken_version_is_given_up_after_its_attempts(cli, runs, tmp_path, monkeypatch):
    monkeypatch.setattr(watch_module, "MAX_ATTEMPTS", 2)
    (runs / "step-1" / "BROKEN").touch()
    os.utime(runs / "step-1" / "BROKEN", (time.time() - 3600, time.time() - 3600))
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "3s")
    assert result.code == 3, result.err  # the model's exit code
    assert _complete(tmp_path) == {"step-2": 1}  # the watcher went on
    assert result.err.count("runs/step-1: failed: loading model CountingLLM failed") == 2
    assert "runs/step-1: failed 2 times; not retried (delete " in result.err
    assert result.err.strip().splitlines()[-1].startswith("error: runs/step-1 failed: loading model")
    records = list((tmp_path / "out" / CLAIMS_DIR).rglob("*.failed.json"))
    assert [json.loads(r.read_text())["attempts"] for r in records] == [2]


def test_a_version_another_process_is_evaluating_is_not_a_failure(cli, runs, tmp_path):
    from filelock import FileLock

    swept = cli("sweep", "runs/step-*", "--versions", "step-1..step-1", *COUNTING, *LETTERS)
    assert swept.code == 0, swept.err
    (bundle,) = (tmp_path / "out").glob("*/metadata.json")
    shutil.rmtree(bundle.parent)  # as if a sweep had just started it
    with FileLock(str(bundle.parent.with_name(f".{bundle.parent.name}.lock"))):
        result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--interval", "0.2", "--until", "2s")
    assert result.code == 0, result.err
    assert "runs/step-1: skipped for now: another process is already evaluating into" in result.err
    assert _complete(tmp_path) == {"step-2": 1}
    assert not list((tmp_path / "out" / CLAIMS_DIR).rglob("*.failed.json"))  # no attempt counted


def test_the_python_api_tells_each_version_to_a_hook(runs, tmp_path):
    config = EvalConfig(llm_name="CountingLLM", models=MODELS, task_name="tiny-letters", num_samples=6,
                        output_dir=tmp_path / "out")  # fmt: skip
    told = []
    options = WatchOptions(interval=0.1, until=Until.parse("2s"))
    summary = watch(str(runs / "step-*"), [config], options, after_version=told.append)
    assert [r.version.label for r in told] == [str(runs / "step-1"), str(runs / "step-2")]
    assert all(not r.failed and r.tasks[0].status == "evaluated" for r in told)
    assert summary.count("evaluated") == 2


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--interval", "abc", "invalid --interval 'abc': give a duration above 0 such as 30s"),
        ("--interval", "0", "invalid --interval '0'"),
        ("--until", "tomorrow-ish", "invalid --until 'tomorrow-ish': give a duration (8h, 30m), an ISO time"),
        ("--until", "2001-01-01T00:00", "--until '2001-01-01T00:00' has already passed"),
        ("--versions", "v9..v3", "invalid --versions 'v9..v3'"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(cli, runs, tmp_path, flag, value, says):
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, flag, value)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: " + says), lines[0]
    assert not (tmp_path / "out").exists()
    assert _log(tmp_path) == []


def test_each_finished_evaluation_is_auto_exported(cli, runs, tmp_path):
    config = tmp_path / "watch.yaml"
    exports = tmp_path / "e"
    config.write_text(
        f"auto_export:\n  destinations: [local]\n  configs:\n    local: {{output_dir: {exports}}}\n"
    )
    result = cli("watch", "runs/step-*", *COUNTING, *LETTERS, "--config", config, "--interval", "0.2",
                 "--until", "2s")  # fmt: skip
    assert result.code == 0, result.err
    rows = json.loads((exports / "summary.json").read_text())["rows"]
    assert len(rows) == 2, rows  # both versions' evaluations, once each
    assert result.out.count("local: 1 created") == 2
    swept = cli("sweep", "runs/step-*", *COUNTING, *LETTERS, "--config", config)
    assert swept.code == 2
    assert "'auto_export' in the --config file does not apply to sweep" in swept.err
