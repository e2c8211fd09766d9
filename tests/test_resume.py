"""Resume: crashes, SIGKILL and torn lines continue where they stopped, recomputing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    """The complete lines (a process killed mid-write leaves a torn last one)."""
    text = (bundle / "samples.jsonl").read_text()
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines()]


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
    monkeypatch.setenv("EF_TEST_CRASH_AFTER", "300")  # dies mid-run, after 75 samples' worth of calls
    crashed = cli(*ARGS, "--output-dir", out)
    assert crashed.code != 0
    assert "rerun the same command to resume" in crashed.err
    saved = _rows(_bundle(out))
    assert 64 <= len(saved) <= 75  # every batch scored before the crash was written
    assert not (_bundle(out) / "results.json").exists()
    monkeypatch.delenv("EF_TEST_CRASH_AFTER")
    before = _calls(log)
    assert cli(*ARGS, "--output-dir", out).code == 0
    assert _calls(log) - before == (200 - len(saved)) * 4  # only unfinished samples were scored
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
    assert len(rows) == 200
    assert sorted(r["index"] for r in rows) == list(range(200))
    assert _metrics(bundle) == reference


def test_concurrent_run_on_same_bundle_is_refused(cli, tmp_path):
    from filelock import FileLock

    out = tmp_path / "out"
    assert cli(*ARGS, "--num-samples", "4", "--output-dir", out).code == 0
    bundle = _bundle(out)
    with FileLock(str(out / f".{bundle.name}.lock")):
        result = cli(*ARGS, "--num-samples", "4", "--output-dir", out, "--overwrite")
    assert result.code == 5
    assert "another process is already evaluating" in result.err
    assert (bundle / "results.json").exists()


# ---- damaged bundles: bad rows are set aside and recomputed, never reused silently ----------------


def _finished(cli, tmp_path: Path) -> tuple[Path, Path, dict]:
    out = tmp_path / "out"
    assert cli(*ARGS, "--output-dir", out).code == 0
    bundle = _bundle(out)
    return out, bundle, _metrics(bundle)


def _replace_line(bundle: Path, number: int, text: str) -> str:
    path = bundle / "samples.jsonl"
    lines = path.read_text().splitlines()
    old = lines[number - 1]
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return old


BAD_ROWS = {
    "a list": lambda row: "[1, 2, 3]",
    "an empty object": lambda row: "{}",
    "a JSON string": lambda row: '"row"',
    "a string index": lambda row: json.dumps({**row, "index": str(row["index"])}),
    "a boolean index": lambda row: json.dumps({**row, "index": True}),
    "text scores": lambda row: json.dumps({**row, "scores": {"acc": "yes", "acc_norm": "no"}}),
    "boolean scores": lambda row: json.dumps({**row, "scores": {"acc": True, "acc_norm": False}}),
    "a missing score": lambda row: json.dumps({**row, "scores": {"acc": 1.0}}),
    "another sample's id": lambda row: json.dumps({**row, "id": "not-this-sample"}),
    "other few-shot examples": lambda row: json.dumps({**row, "fewshot_ids": ["x", "y"]}),
    "a prediction out of range": lambda row: json.dumps({**row, "prediction": 9}),
    "logprobs that do not match the choices": lambda row: json.dumps({**row, "logprobs": [0.0]}),
    "a generation row": lambda row: json.dumps(
        {k: v for k, v in row.items() if k not in ("choices", "logprobs")} | {"generation": "x"}
    ),
    "not JSON": lambda row: "{not json",
    "a target set to the prediction": lambda row: json.dumps(
        {**row, "target": row["prediction"], "scores": {"acc": 1.0, "acc_norm": 1.0}}
    ),
    "a score edited": lambda row: json.dumps({**row, "scores": {**row["scores"], "acc": 5.0}}),
    "an extra score": lambda row: json.dumps({**row, "scores": {**row["scores"], "f1": 1.0}}),
    "other choices": lambda row: json.dumps({**row, "choices": list(reversed(row["choices"]))}),
    "another subject": lambda row: json.dumps({**row, "subject": "elsewhere"}),
    "a NaN log-likelihood": lambda row: json.dumps(
        {**row, "logprobs": [float("nan")] * len(row["logprobs"])}
    ),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_a_row_of_the_wrong_shape_is_set_aside_and_recomputed(cli, tmp_path, monkeypatch, kind):
    out, bundle, reference = _finished(cli, tmp_path)
    lines = (bundle / "samples.jsonl").read_text().splitlines()
    # A sample the model got wrong, so that "set the target to the prediction" changes something.
    number = next(n for n, line in enumerate(lines, 1) if n >= 42 and json.loads(line)["scores"]["acc"] == 0)
    row = json.loads(lines[number - 1])
    bad = BAD_ROWS[kind](row)
    _replace_line(bundle, number, bad)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 0, result.err
    assert f"samples.jsonl:{number} is not a usable sample row" in result.err
    assert _calls(log) == 4  # that one sample, its 4 choices; nothing else
    assert _metrics(bundle) == reference  # n is 200 again, not 199
    rows = _rows(bundle)
    assert sorted(r["index"] for r in rows) == list(range(200))
    (kept,) = [json.loads(x) for x in (bundle / "samples.rejected.jsonl").read_text().splitlines()]
    assert kept["line"] == number
    assert kept["text"] == bad or json.loads(kept["text"]) == json.loads(bad)
    assert "reusing" in cli(*ARGS, "--output-dir", out).err.lower()


def test_a_duplicated_row_is_set_aside(cli, tmp_path):
    out, bundle, reference = _finished(cli, tmp_path)
    lines = (bundle / "samples.jsonl").read_text().splitlines()
    (bundle / "samples.jsonl").write_text("\n".join([*lines, lines[3]]) + "\n")
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 0
    assert f"a second row for index {json.loads(lines[3])['index']}" in result.err
    assert len(_rows(bundle)) == 200
    assert _metrics(bundle) == reference


@pytest.mark.parametrize("content", ["[]", "{not json", '{"status": 5}', "", '{"schema_version": "x"}'])
def test_damaged_metadata_says_overwrite_and_overwrite_works(cli, tmp_path, content):
    out, bundle, reference = _finished(cli, tmp_path)
    (bundle / "metadata.json").write_text(content)
    result = cli(*ARGS, "--output-dir", out)
    lines = result.err.strip().splitlines()
    assert result.code == 5
    assert len(lines) == 1
    assert "metadata.json is damaged" in lines[0]
    assert "rerun the evaluation with --overwrite" in lines[0]
    assert (bundle / "metadata.json").read_text() == content  # nothing touched
    fixed = cli(*ARGS, "--output-dir", out, "--overwrite")
    assert fixed.code == 0, fixed.err
    assert _metrics(bundle) == reference
    assert [p.name for p in out.iterdir() if not p.name.endswith(".lock")] == [bundle.name]


@pytest.mark.parametrize("content", ['{"metrics": []}', "[]", "{broken", '{"schema_version": 1}'])
def test_damaged_results_are_recomputed_from_the_samples_without_the_model(
    cli, tmp_path, monkeypatch, content
):
    out, bundle, reference = _finished(cli, tmp_path)
    (bundle / "results.json").write_text(content)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 0, result.err
    assert _calls(log) == 0
    assert _metrics(bundle) == reference


def test_results_that_do_not_match_the_rows_are_recomputed(cli, tmp_path, monkeypatch):
    out, bundle, reference = _finished(cli, tmp_path)
    results = json.loads((bundle / "results.json").read_text())
    results["metrics"]["overall"]["acc"]["value"] = 0.99
    (bundle / "results.json").write_text(json.dumps(results))
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 0
    assert "results.json does not match its sample rows" in result.err
    assert _calls(log) == 0
    assert _metrics(bundle) == reference


def test_a_newer_schema_is_refused_with_the_upgrade_to_do(cli, tmp_path):
    out, bundle, _ = _finished(cli, tmp_path)
    meta = json.loads((bundle / "metadata.json").read_text())
    (bundle / "metadata.json").write_text(json.dumps({**meta, "schema_version": 99}))
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 5
    assert "bundle schema 99" in result.err
    assert "upgrade eval_framework" in result.err


# ---- --overwrite: the old bundle stays authoritative until the new one is complete ---------------


def _snapshot(bundle: Path) -> dict[str, bytes]:
    return {str(p.relative_to(bundle)): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}


def _start_and_kill(out: Path, sig: int, extra: list[str]) -> None:
    """Start an --overwrite in a subprocess, let it write some samples, then send ``sig``."""
    env = {**os.environ, "EF_TEST_SLEEP": "0.3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eval_framework", *ARGS, "--output-dir", str(out), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            staging = [p for p in out.iterdir() if p.name.endswith(".overwrite")]
            if staging and (staging[0] / "samples.jsonl").exists() and _rows(staging[0]):
                break
            time.sleep(0.05)
        proc.send_signal(sig)
    finally:
        _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert "stopped by SIGTERM" in err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_overwrite_killed_leaves_the_old_bundle_in_place_and_resumes(cli, tmp_path, monkeypatch, sig):
    out, bundle, reference = _finished(cli, tmp_path)
    before = _snapshot(bundle)
    _start_and_kill(out, sig, ["--overwrite"])
    assert _snapshot(bundle) == before  # the old bundle is untouched and still the one in place
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert visible == [bundle]  # no second bundle, no stranded copy
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EF_TEST_CALL_LOG", str(log))
    again = cli(*ARGS, "--output-dir", out)
    assert again.code == 0
    assert "reusing" in again.err.lower()
    assert _calls(log) == 0
    assert _snapshot(bundle) == before
    finish = cli(*ARGS, "--output-dir", out, "--overwrite")
    assert finish.code == 0, finish.err
    assert 0 < _calls(log) < 200 * 4  # the overwrite resumed where it was stopped
    assert _metrics(bundle) == reference
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [bundle.name]


def test_a_swap_cut_short_is_finished_by_the_next_run(cli, tmp_path):
    from eval_framework.results import Bundle

    out, bundle, reference = _finished(cli, tmp_path)
    new = Bundle(bundle).overwrite_dir
    import shutil

    shutil.copytree(bundle, new)  # a complete new bundle, waiting to be swapped in
    os.replace(bundle, out / f".{bundle.name}.old")  # killed between the two renames
    result = cli(*ARGS, "--output-dir", out)
    assert result.code == 0
    assert "reusing" in result.err.lower()
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [bundle.name]
    assert _metrics(bundle) == reference


def test_overwrite_refuses_to_drop_unsynced_offline_wandb_runs(cli, tmp_path):
    out, bundle, _ = _finished(cli, tmp_path)
    run_dir = bundle / "wandb" / "offline-run-20260101_000000-eval-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run-eval-abc.wandb").write_bytes(b":W&B")
    before = _snapshot(bundle)
    result = cli(*ARGS, "--output-dir", out, "--overwrite")
    lines = result.err.strip().splitlines()
    assert result.code == 5
    assert len(lines) == 1
    assert f"wandb sync {run_dir}" in lines[0]
    assert "never synced" in lines[0]
    assert _snapshot(bundle) == before
    (run_dir / "run-eval-abc.wandb.synced").write_bytes(b"")  # what `wandb sync` leaves behind
    assert cli(*ARGS, "--output-dir", out, "--overwrite").code == 0


def test_bundle_files_get_the_usual_permissions_not_private_ones(cli, tmp_path):
    old = os.umask(0o022)
    try:
        _, bundle, _ = _finished(cli, tmp_path)
    finally:
        os.umask(old)
    for name in ("metadata.json", "results.json", "samples.jsonl"):
        assert (bundle / name).stat().st_mode & 0o777 == 0o644, name  # readable by the team
