"""Resume: crashes, SIGKILL and torn lines continue where they stopped, recomputing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import USER_MODELS

ARGS = [
    "--models",
    str(USER_MODELS),
    "--llm-name",
    "HashLLM",
    "--task-name",
    "tiny-letters",
    "--num-fewshot",
    "2",
    "--batch-size",
    "1",
]  # chunks of 32 samples x 4 choices


def _bundle(out: Path) -> Path:
    (b,) = [p for p in out.iterdir() if p.is_dir()]
    return b


def _rows(bundle: Path) -> list[dict]:
    return [json.loads(x) for x in (bundle / "samples.jsonl").read_text().splitlines()]


def _metrics(bundle: Path) -> dict:
    return json.loads((bundle / "results.json").read_text())["metrics"]


def _reference(cli, tmp_path: Path) -> dict:
    assert cli(*ARGS, "--output-dir", tmp_path / "ref").code == 0
    return _metrics(_bundle(tmp_path / "ref"))


def _calls(log: Path) -> int:
    return log.read_text().count("x") if log.exists() else 0


def test_crash_then_rerun_recomputes_nothing_finished(cli, tmp_path, monkeypatch):
    reference = _reference(cli, tmp_path)
    out, log = tmp_path / "out", tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    monkeypatch.setenv("EF_TEST_CRASH_AFTER", "300")  # dies in the 3rd chunk
    crashed = cli(*ARGS, "--output-dir", out)
    assert crashed.code != 0 and "rerun the same command to resume" in crashed.err
    saved = _rows(_bundle(out))
    assert len(saved) == 64
    assert not (_bundle(out) / "results.json").exists()
    monkeypatch.delenv("EF_TEST_CRASH_AFTER")
    before = _calls(log)
    assert cli(*ARGS, "--output-dir", out).code == 0
    assert _calls(log) - before == (200 - 64) * 4  # only unfinished samples were scored
    rows = _rows(_bundle(out))
    assert sorted(r["index"] for r in rows) == list(range(200))
    assert _metrics(_bundle(out)) == reference


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(cli, tmp_path):
    reference = _reference(cli, tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "EF_TEST_SLEEP": "0.3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eval_framework", *ARGS, "--output-dir", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            bundles = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
            if bundles and (bundles[0] / "samples.jsonl").exists() and _rows(bundles[0]):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partial = _rows(_bundle(out))
    assert 0 < len(partial) < 200
    assert cli(*ARGS, "--output-dir", out).code == 0
    assert sorted(r["index"] for r in _rows(_bundle(out))) == list(range(200))
    assert _metrics(_bundle(out)) == reference


def test_torn_last_line_is_repaired(cli, tmp_path, monkeypatch):
    reference = _reference(cli, tmp_path)
    out = tmp_path / "out"
    assert cli(*ARGS, "--output-dir", out).code == 0
    bundle = _bundle(out)
    lines = (bundle / "samples.jsonl").read_text().splitlines(keepends=True)
    (bundle / "samples.jsonl").write_text("".join(lines[:50]) + lines[50][:17])  # killed mid-write
    (bundle / "results.json").unlink()
    meta = json.loads((bundle / "metadata.json").read_text())
    (bundle / "metadata.json").write_text(json.dumps({**meta, "status": "running"}))
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    assert cli(*ARGS, "--output-dir", out).code == 0
    assert _calls(log) == 150 * 4
    rows = _rows(bundle)
    assert len(rows) == 200 and sorted(r["index"] for r in rows) == list(range(200))
    assert _metrics(bundle) == reference


def test_concurrent_run_on_same_bundle_is_refused(cli, tmp_path):
    from filelock import FileLock

    out = tmp_path / "out"
    assert cli(*ARGS, "--num-samples", "4", "--output-dir", out).code == 0
    bundle = _bundle(out)
    with FileLock(str(out / f".{bundle.name}.lock")):
        result = cli(*ARGS, "--num-samples", "4", "--output-dir", out, "--overwrite")
    assert result.code == 5 and "another process is already evaluating" in result.err
    assert (bundle / "results.json").exists()
