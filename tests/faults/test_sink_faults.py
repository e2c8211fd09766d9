"""Classes 2 and 3: a failing sink never stops the others; unreachable services are told apart
fast and named with what to check."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.fakes.hub_http import fake_hub_http
from tests.fakes.wandb_http import fake_wandb_http, refused_url
from tests.faults.conftest import Workspace, expect, signal_when

KEY = "k" * 40
ONLINE = {"WANDB_API_KEY": KEY, "WANDB_MODE": None}
HF = ("--hf-upload-repo", "my-org/evals")
ONLINE_HUB = {"HF_HUB_OFFLINE": None, "HF_TOKEN": "hf_" + "v" * 34}
WANDB = ("--wandb-project", "evals")


def _only_new(ws: Workspace, before: set[str]) -> Path:
    (found,) = [p for p in ws.out.iterdir() if p.is_dir() and p.name not in before and p.name[0] != "."]
    return found


def _offline_runs(bundle: Path) -> list[Path]:
    return list((bundle / "wandb").glob("offline-run-*/run-*.wandb"))


def _missing(ws: Workspace, package: str) -> dict[str, str | None]:
    """PYTHONPATH with a ``package`` that fails to import, as an uninstalled one does."""
    shadow = ws.root / "shadow" / package
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{package}'\", name='{package}')\n"
    )
    return {"PYTHONPATH": str(ws.root / "shadow")}


def test_a_missing_hf_token_is_refused_before_the_evaluation(ws):
    before = {p.name for p in ws.out.iterdir()}
    result = ws.evaluate("--num-samples", "5", *HF, *WANDB)
    expect(result, 2, "needs a Hugging Face token", "set HF_TOKEN")
    assert {p.name for p in ws.out.iterdir()} == before
    assert result.seconds < 10
    ws.keeper_intact()


def test_a_token_the_hub_rejects_is_refused_before_the_evaluation(ws):
    with fake_hub_http(whoami_status=401) as hub:
        before = {p.name for p in ws.out.iterdir()}
        result = ws.evaluate(
            "--num-samples",
            "5",
            *HF,
            env={**ONLINE_HUB, "HF_TOKEN": "hf_" + "x" * 34, "HF_ENDPOINT": hub.url},
        )
    expect(result, 2, "rejected the token (HTTP 401)", "check HF_TOKEN")
    assert {p.name for p in ws.out.iterdir()} == before
    assert "x" * 34 not in result.err
    ws.keeper_intact()


def test_an_unreachable_hub_still_lets_wandb_log_and_names_the_command(ws):
    before = {p.name for p in ws.out.iterdir()}
    result = ws.evaluate("--num-samples", "5", *HF, *WANDB, env=ONLINE_HUB)
    last = expect(result, 7, "cannot reach the Hugging Face Hub at", "connection refused", "HF_ENDPOINT")
    bundle = _only_new(ws, before)
    assert _offline_runs(bundle)  # W&B was logged (offline) although the Hub failed first
    assert f"eval_framework upload {bundle}" in last
    assert "--hf-upload-repo my-org/evals" in last
    ws.keeper_intact()


def test_a_hub_answering_500_to_the_upload_is_an_export_error(ws):
    with fake_hub_http(whoami_status=200, other_status=500) as hub:
        result = ws.evaluate("--num-samples", "5", *HF, env={**ONLINE_HUB, "HF_ENDPOINT": hub.url})
    expect(result, 7, "my-org/evals failed", "finish the export with: eval_framework upload")
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("package", "flags", "extra"), [("wandb", WANDB, "wandb"), ("huggingface_hub", HF, "hub")]
)
def test_a_missing_extra_is_named_before_anything_starts(ws, package, flags, extra):
    before = {p.name for p in ws.out.iterdir()}
    env = {**_missing(ws, package), **ONLINE_HUB}
    result = ws.evaluate("--num-samples", "5", *flags, env=env)
    expect(result, 2, f"pip install 'eval_framework[{extra}]'")
    assert {p.name for p in ws.out.iterdir()} == before
    ws.keeper_intact()


def test_an_upload_asked_for_while_the_hub_is_set_offline_is_refused_first(ws):
    before = {p.name for p in ws.out.iterdir()}
    result = ws.evaluate("--num-samples", "5", *HF, env={"HF_TOKEN": "hf_" + "v" * 34})
    expect(result, 2, "HF_HUB_OFFLINE is set", "eval_framework upload")
    assert {p.name for p in ws.out.iterdir()} == before
    ws.keeper_intact()


def test_wandb_refusing_connections_fails_in_seconds(ws):
    url = refused_url()
    result = ws.evaluate("--num-samples", "5", *WANDB, env={**ONLINE, "WANDB_BASE_URL": url})
    expect(result, 7, f"cannot reach the W&B server at {url} (connection refused)", "WANDB_BASE_URL")
    assert result.seconds < 20
    assert "in use" not in result.err
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [
        ("500", "is failing (HTTP 500): retry later"),
        ("hang", "did not answer in time (no answer within 1 s)"),
    ],
)
def test_a_failing_or_hung_wandb_server_is_said_as_such(ws, behaviour, says):
    with fake_wandb_http(behaviour) as server:
        env = {**ONLINE, "WANDB_BASE_URL": server.url, "WANDB_HTTP_TIMEOUT": "1"}
        result = ws.evaluate("--num-samples", "5", *WANDB, env=env)
    expect(result, 7, says, "finish the export with")
    assert result.seconds < 40
    ws.keeper_intact()


def test_a_wandb_start_that_times_out_after_login_is_an_export_error(ws):
    with fake_wandb_http("viewer-then-hang") as server:
        env = {**ONLINE, "WANDB_BASE_URL": server.url, "WANDB_INIT_TIMEOUT": "3"}
        result = ws.evaluate("--num-samples", "5", *WANDB, env=env)
    expect(result, 7, "W&B run start failed", "did not answer in time")
    assert "in use" not in result.err
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("key", "says"),
    [(KEY, "the server rejected the API key"), ("short-key", "WANDB_API_KEY is malformed")],
)
def test_a_rejected_or_malformed_key_logs_offline_and_says_so(ws, key, says):
    with fake_wandb_http("401") as server:
        before = {p.name for p in ws.out.iterdir()}
        env = {**ONLINE, "WANDB_API_KEY": key, "WANDB_BASE_URL": server.url}
        result = ws.evaluate("--num-samples", "5", *WANDB, env=env)
    expect(result, 0, says, "wandb sync", lines=2)
    assert _offline_runs(_only_new(ws, before))
    assert key not in result.err
    assert len(server.requests) == (1 if key == KEY else 0)
    ws.keeper_intact()


def test_a_kill_during_the_export_keeps_the_bundle_and_upload_finishes_it(ws):
    # Refused at the start (the evaluation goes on without a live run), then the export's run
    # start logs in and hangs: the kill lands in the export.
    with fake_wandb_http("500", later="viewer-then-hang") as server:
        before = {p.name for p in ws.out.iterdir()}
        env = {**ONLINE, "WANDB_BASE_URL": server.url, "WANDB_INIT_TIMEOUT": "120"}
        proc = ws.start(*ws.KEEPER_ARGS, "--output-dir", ws.out, "--num-samples", "5", *WANDB, env=env)
        # The export's run start is under way once the server is asked more than the logins.
        result = signal_when(
            proc, lambda: any("RunResumeStatus" in q for q in server.requests), signal.SIGTERM
        )
    expect(result, 143, "stopped by SIGTERM: the evaluation is complete", "finish the export with")
    bundle = _only_new(ws, before)
    finish = ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline")
    expect(finish, 0, "logged offline; sync it with")
    ws.keeper_intact()


def test_upload_of_a_path_that_does_not_exist(ws):
    expect(ws.run("upload", ws.root / "nope", *WANDB), 2, "does not exist", "pass bundle directories")
    ws.keeper_intact()


def test_upload_of_only_unfinished_bundles(ws):
    unfinished = ws.root / "partial" / "b"
    unfinished.mkdir(parents=True)
    (unfinished / "metadata.json").write_text("{}")
    expect(
        ws.run("upload", ws.root / "partial", *WANDB),
        5,
        "metadata.json is damaged",
        "rerun the evaluation with --overwrite",
        "1 of 1 bundle(s) skipped (see above), nothing was exported",
        lines=2,
    )
    ws.keeper_intact()


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        ("results", "results.json does not match its sample rows"),
        ("prediction", "its prediction is not what its log-likelihoods give"),
        ("score", "its scores are not what its log-likelihoods give"),
        ("target", "its files were changed after it finished"),
    ],
)
def test_upload_refuses_a_bundle_whose_scores_were_edited(ws, tamper, says):
    import json

    bundle = ws.bundle("--num-samples", "6")
    if tamper == "results":
        results = json.loads((bundle / "results.json").read_text())
        results["metrics"]["overall"]["acc"]["value"] = 0.99
        (bundle / "results.json").write_text(json.dumps(results))
    else:
        lines = (bundle / "samples.jsonl").read_text().splitlines()
        wrong = [
            i for i, line in enumerate(lines) if json.loads(line)["prediction"] != json.loads(line)["target"]
        ]
        at = wrong[0] if tamper == "target" else 0  # a row the model got wrong, to forge it right
        row = json.loads(lines[at])
        if tamper == "prediction":
            row["prediction"] = (row["prediction"] + 1) % len(row["choices"])
        elif tamper == "score":
            row["scores"]["acc"] = 1.0 - row["scores"]["acc"]
        else:  # a consistent forgery: the gold answer moved to the prediction, results recomputed
            row["target"] = row["prediction"]
            row["scores"] = {"acc": 1.0, "acc_norm": float(row["prediction_norm"] == row["prediction"])}
        lines[at] = json.dumps(row)
        (bundle / "samples.jsonl").write_text("\n".join(lines) + "\n")
        if tamper == "target":
            from eval_framework.metrics import aggregate

            rows = [json.loads(line) for line in lines]
            results = json.loads((bundle / "results.json").read_text())
            results["metrics"] = aggregate(rows, ["acc", "acc_norm"])
            (bundle / "results.json").write_text(json.dumps(results))
    dry = ws.run("upload", bundle, *WANDB, "--dry-run")
    assert dry.code == 0, dry.out
    assert says in dry.out, dry.out
    assert '"complete": false' in dry.out, dry.out
    expect(ws.run("upload", bundle, *WANDB), 5, says, "1 of 1 bundle(s) skipped", lines=2)
    good = ws.bundle("--num-samples", "4")
    both = ws.run("upload", bundle, good, *WANDB, "--wandb-mode", "offline")
    assert both.code == 5, both.err
    assert f"skipping {bundle}: not a finished evaluation (" in both.err, both.err
    assert "1 of 2 bundle(s) skipped (see above), the others are exported" in both.lines[-1], both.err
    assert (good / "exports.jsonl").is_file()  # the finished one was logged all the same
    assert says in both.lines[0], both.err
    assert "rerun the evaluation" in both.lines[0], both.err
    ws.keeper_intact()


def test_reruns_offline_reuse_the_unsynced_offline_run_instead_of_piling_up_copies(ws):
    before = {p.name for p in ws.out.iterdir()}
    first = ws.evaluate("--num-samples", "5", *WANDB, "--wandb-mode", "offline")
    expect(first, 0, "logged offline; sync it with")
    bundle = _only_new(ws, before)
    (run,) = _offline_runs(bundle)
    again = ws.evaluate("--num-samples", "5", *WANDB, "--wandb-mode", "offline")
    expect(again, 0, "reusing", "was already logged offline (not synced yet); sync it with", lines=2)
    assert str(run.parent) in again.err
    assert _offline_runs(bundle) == [run]
    upload = ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline")
    expect(upload, 0, "was already logged offline (not synced yet)")
    tagged = ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline", "--wandb-tags", "nightly")
    expect(tagged, 0, "logged offline; sync it with")  # other records: a log of their own
    assert len(_offline_runs(bundle)) == 2
    for log in _offline_runs(bundle):
        log.with_name(log.name + ".synced").write_text("")  # what `wandb sync` leaves
    expect(ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline"), 0, "logged offline; sync it with")
    assert len(_offline_runs(bundle)) == 3  # synced runs are not reused: a new log for the next sync
    ws.keeper_intact()


def test_a_full_disk_while_logging_offline_is_one_error_and_leaves_no_half_run(ws):
    import subprocess

    from tests.faults.conftest import CLI, Result
    from tests.faults.test_input_faults import _tmpfs_available

    if not _tmpfs_available():
        pytest.skip("needs a private mount namespace (unshare -rm) for a real full disk")
    bundle = ws.bundle("--num-samples", "10")
    pages = sum(p.stat().st_size // 4096 + 1 for p in bundle.rglob("*") if p.is_file())
    disk = ws.root / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size={(pages + 8) * 4096} tmpfs {disk} && cp -a {bundle} {disk}/b && "
              f"{CLI} upload {disk}/b --wandb-project evals --wandb-mode offline; code=$?; "
              f"ls -a {disk}/b/wandb 2>/dev/null; exit $code")  # fmt: skip
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ws.root, env=ws.environment(None),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    result = Result(proc.returncode, "", proc.stderr, 0.0)
    expect(result, 7, "No space left on device", "finish the export with", "--wandb-mode offline")
    assert "offline-run-" not in proc.stdout, proc.stdout  # the half-written run was removed
    ws.keeper_intact()


def test_an_offline_run_is_recorded_with_its_absolute_path_and_recognised_from_anywhere(ws):
    first = ws.run(
        *ws.KEEPER_ARGS, "--output-dir", "rel", "--num-samples", "5", *WANDB, "--wandb-mode", "offline"
    )
    expect(first, 0, "logged offline; sync it with: wandb sync /")  # an absolute path
    (bundle,) = [p for p in (ws.root / "rel").iterdir() if p.is_dir() and p.name[0] != "."]
    elsewhere = ws.root / "elsewhere"
    elsewhere.mkdir()
    again = ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline", cwd=elsewhere)
    expect(again, 0, "was already logged offline (not synced yet)")
    assert len(_offline_runs(bundle)) == 1
    ws.keeper_intact()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_an_offline_upload_leaves_no_half_run(ws, sig):
    bundle = ws.bundle("--num-samples", "10")
    proc = ws.start("upload", bundle, *WANDB, "--wandb-mode", "offline")
    result = signal_when(proc, lambda: bool(list((bundle / "wandb").glob("offline-run-*"))), sig)
    code, word = (143, "stopped by SIGTERM") if sig == signal.SIGTERM else (130, "interrupted")
    if result.code == 0:  # the log finished before the stop could land: nothing half-done either
        pytest.skip("the upload finished first")
    expect(result, code, word)
    assert _offline_runs(bundle) == [], result.err
    assert not list((bundle / "wandb").glob("offline-run-*")), result.err
    expect(ws.run("upload", bundle, *WANDB, "--wandb-mode", "offline"), 0, "logged offline; sync it with")
    assert len(_offline_runs(bundle)) == 1
    ws.keeper_intact()
