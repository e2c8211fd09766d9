"""W&B logging through the real SDK in offline mode, asserted by reading the run's transaction
log back; online-only calls against the fake W&B service."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_framework.results import Bundle
from eval_framework.sinks import ledger
from eval_framework.sinks.wandb_live import log_to_training_run
from eval_framework.sinks.wandb_sink import LogReport
from eval_framework.sinks.wandb_spec import WandbOptions, build_spec
from tests.fakes.wandb_http import FakeWandbHttp, fake_wandb_http, refused_url
from tests.fakes.wandb_service import VALID_KEY
from tests.sinks.conftest import EVAL
from tests.wandb_log_reader import RunLog, read_run, run_files

SECRET_KEY = "s" * 36 + "KEY1"
USER_MODELS = Path(__file__).parents[1] / "fixtures" / "user_models.py"
OFFLINE = ("--wandb-project", "evals", "--wandb-mode", "offline")


def _runs(bundle: Path) -> list[RunLog]:
    return [read_run(p) for p in run_files(bundle / "wandb")]


def _only_bundle(out: Path) -> Path:
    (found,) = [p for p in out.iterdir() if p.is_dir()]
    return found


def _our_artifact(log: RunLog):
    (artifact,) = [a for a in log.artifacts if a.type == "eval-results"]
    return artifact


def test_live_logging_without_a_key_goes_offline_and_says_how_to_sync(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    result = cli(
        *EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals", "--wandb-tags", "a", "b"
    )
    assert result.code == 0, result.err
    assert "no W&B API key found" in result.err
    assert "logging offline" in result.err
    bundle = _only_bundle(tmp_path / "out")
    (log,) = _runs(bundle)
    assert f"wandb sync {log_dir(bundle)}" in " ".join(result.err.split())
    assert log.run.run_group == "tiny-letters-v0"
    assert log.run.job_type == "tiny-letters"
    assert log.run.display_name == "tiny-letters-v0 tiny-letters 2-shot n=24"
    assert list(log.run.tags) == ["a", "b", "tiny-letters", "2-shot"]
    assert log.run.project == "evals"
    assert log.config["task_name"] == "tiny-letters"
    assert log.config["num_fewshot"] == 2
    assert log.config["num_samples"] == 24
    assert log.config["language"] == "en"
    assert log.config["eval_framework_version"]
    assert log.config["checkpoint_name"] == "tiny-letters-v0"
    results = json.loads((bundle / "results.json").read_text())["metrics"]
    assert log.summary["tiny-letters/acc"] == results["overall"]["acc"]["value"]
    assert log.summary["tiny-letters/acc/stderr"] == results["overall"]["acc"]["stderr"]
    assert log.summary["tiny-letters/reverse/acc_norm/n"] == results["subjects"]["reverse"]["acc_norm"]["n"]
    assert log.summary["tiny-letters/samples/_type"] == "table-file"
    assert log.summary["tiny-letters/samples/nrows"] == 24
    artifact = _our_artifact(log)
    spec = build_spec(Bundle(bundle), WandbOptions(project="evals"))
    assert artifact.name == spec.artifact_name
    assert spec.artifact_alias in artifact.aliases
    assert sorted(e.path for e in artifact.manifest.contents) == [
        "eval.log", "metadata.json", "results.json", "samples.jsonl", "samples_table.table.json"]  # fmt: skip
    assert log.exit_code == 0
    assert log.preempting == 0
    # Everything a later `wandb sync` uploads (our files and the SDK's table files) is in the bundle.
    staged = [Path(e.local_path) for a in log.artifacts for e in a.manifest.contents]
    assert len(staged) == 6, staged
    assert all(p.is_relative_to(bundle) and p.is_file() for p in staged), staged
    entry = ledger.last(bundle, "wandb")
    assert entry is not None
    assert entry["status"] == "offline"
    assert entry["run_id"] == log.run.run_id


def log_dir(bundle: Path) -> Path:
    (path,) = run_files(bundle / "wandb")
    return path.parent


def _comparable(log: RunLog) -> dict:
    volatile = ("_runtime", "_timestamp", "_wandb", "artifact_path", "_latest_artifact_path")
    summary = {k: v for k, v in log.summary.items() if not any(part in k for part in volatile)}
    artifact = _our_artifact(log)
    return {
        "run": (
            log.run.run_id,
            log.run.run_group,
            log.run.job_type,
            log.run.display_name,
            list(log.run.tags),
            log.run.notes,
            log.run.project,
        ),
        "config": log.config,
        "summary": summary,
        "artifact": (
            artifact.name,
            list(artifact.aliases),
            artifact.digest,
            sorted((e.path, e.digest) for e in artifact.manifest.contents),
        ),
        "exit": log.exit_code,
    }


def test_upload_gives_the_same_records_as_live_logging(cli, tmp_path):
    live = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals", "--wandb-mode", "offline")
    assert live.code == 0, live.err
    bundle = _only_bundle(tmp_path / "out")
    (synced,) = run_files(bundle / "wandb")
    synced.with_name(synced.name + ".synced").write_text("")  # else the upload points at it, unsynced
    up = cli("upload", tmp_path / "out", "--wandb-project", "evals", "--wandb-mode", "offline")
    assert up.code == 0, up.err
    first, second = _runs(bundle)
    assert _comparable(first) == _comparable(second)
    assert first.run.run_id == second.run.run_id  # one run, updated: exactly once


def test_run_id_group_results_and_table_flags(cli, bundle, tmp_path):
    result = cli("upload", bundle, "--wandb-project", "evals", "--wandb-mode", "offline",
                 "--wandb-run-id", "train-run-7", "--wandb-group", "sweep-3", "--no-wandb-upload-results",
                 "--wandb-table-rows", "5", "--wandb-entity", "acme")  # fmt: skip
    assert result.code == 0, result.err
    (log,) = _runs(bundle)
    assert log.run.run_id == "train-run-7"
    assert log.run.run_group == "sweep-3"
    assert log.run.entity == "acme"
    assert log.summary["tiny-letters/samples/nrows"] == 5
    assert not [a for a in log.artifacts if a.type == "eval-results"]  # results not uploaded
    config = tmp_path / "sinks.yaml"
    config.write_text("llm_name: hf\nwandb_project: evals\nwandb_mode: offline\nwandb_tags: x,y\n")
    assert cli("upload", bundle, "--config", config).code == 0
    assert list(_runs(bundle)[-1].run.tags)[:2] == ["x", "y"]
    assert cli("upload", bundle, "--config", config, "--wandb-tags", "z").code == 0
    assert list(_runs(bundle)[-1].run.tags)[:1] == ["z"]  # the flag wins over the file
    config.write_text("wandb_project: evals\nwandb_mode: disabled\nwandb_tags: [x, y]\n")
    result = cli("upload", bundle, "--config", config)
    assert result.code == 0, result.err
    assert len(_runs(bundle)) == 3  # disabled: nothing more was logged


def test_bad_wandb_flags_are_refused_before_anything_runs(cli, bundle):
    result = cli("upload", bundle, "--wandb-project", "evals", "--wandb-run-id", "no/slashes")
    assert result.code == 2
    assert "wandb_run_id" in result.err.replace("-", "_")
    result = cli("upload", bundle, "--wandb-project", "evals", "--wandb-mode", "sometimes")
    assert result.code == 2
    assert "online" in result.err
    assert not run_files(bundle / "wandb")


def test_dry_run_says_create_then_update(cli, bundle, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET_KEY)  # online: nothing is asked of a server in a dry run
    plan = json.loads(cli("upload", bundle.parent, "--wandb-project", "evals", "--dry-run").out)
    assert plan[0]["wandb"]["action"] == "create"
    assert plan[0]["wandb"]["group"] == "tiny-letters-v0"
    assert not run_files(bundle / "wandb")  # nothing was created
    spec = build_spec(Bundle(bundle), WandbOptions(project="evals"))
    ledger.append(bundle, ledger.wandb_entry(spec, "online", "logged", LogReport(spec.run_id, "online")))
    plan = json.loads(cli("upload", bundle, "--wandb-project", "evals", "--dry-run").out)
    assert plan[0]["wandb"]["action"] == "update"


def test_dry_run_says_what_an_offline_upload_would_do(cli, bundle):
    args = ("upload", bundle, *OFFLINE, "--wandb-registry", "reg/coll")
    (first,) = json.loads(cli(*args, "--dry-run").out)
    assert first["wandb"]["mode"] == "offline"
    assert first["wandb"]["action"] == "log offline"
    assert first["wandb"]["registry_link"] == "reg/coll (online only: pending until an online upload)"
    assert cli(*args).code == 0
    (again,) = json.loads(cli(*args, "--dry-run").out)
    assert again["wandb"]["action"] == "nothing new (already logged offline, not synced yet)"


def test_wandb_failure_keeps_the_bundle_and_prints_the_upload_command(cli, tmp_path, monkeypatch):
    """A server that logs the key in and then stops answering: the SDK's start times out."""
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "3")
    monkeypatch.setenv("WANDB_API_KEY", SECRET_KEY)
    with fake_wandb_http("viewer-then-hang") as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        result = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals")
    assert result.code == 7
    bundle = _only_bundle(tmp_path / "out")
    assert Bundle(bundle).is_complete()  # the evaluation finished regardless
    assert "W&B run start failed" in result.err
    assert "did not answer in time" in result.err
    # Probed and started once at the start (not holding up the evaluation), once more at the end.
    assert sum("Viewer" in q and "viewer { id }" in q for q in server.requests) == 2
    assert len(result.err.strip().splitlines()) == 1
    assert SECRET_KEY not in result.err
    command = result.err.split("finish the export with: ")[1].split()
    assert command[:3] == ["eval_framework", "upload", str(bundle)]
    assert "--wandb-project" in command
    assert ledger.last(bundle, "wandb")["status"] == "failed"
    again = cli(*command[1:], "--wandb-mode", "offline")
    assert again.code == 0, again.err
    (log,) = _runs(bundle)
    assert log.summary["tiny-letters/acc/n"] == 24


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [
        ("refused", "connection refused): check network access and WANDB_BASE_URL"),
        ("500", "is failing (HTTP 500): retry later"),
        ("hang", "no answer within 1 s): check network access and WANDB_BASE_URL"),
    ],
)
def test_an_unusable_server_is_told_apart_fast(cli, tmp_path, monkeypatch, behaviour, says):
    from eval_framework import wandb_server

    monkeypatch.setattr(wandb_server, "PROBE_TIMEOUT", 1.0)
    monkeypatch.setenv("WANDB_API_KEY", SECRET_KEY)
    with fake_wandb_http("500" if behaviour == "500" else "hang") as server:
        url = refused_url() if behaviour == "refused" else server.url
        monkeypatch.setenv("WANDB_BASE_URL", url)
        started = time.monotonic()
        result = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals")
        took = time.monotonic() - started
    assert result.code == 7
    assert says in result.err
    assert "in use" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert took < 30  # the SDK's own init timeout (90 s) is never waited out
    if behaviour == "refused":
        assert "cannot reach the W&B server at " + url in result.err


def _rejecting_server(monkeypatch, stack) -> FakeWandbHttp:
    """A W&B server that rejects the key (HTTP 401), as the real one does."""
    server = stack.enter_context(fake_wandb_http("401"))
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", SECRET_KEY)
    return server


SLOW_EVAL = """
import sys
from eval_framework.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_mid_evaluation_records_preemption_and_the_rerun_resumes_the_run(tmp_path, letters_task):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "EF_TEST_SLEEP": "20",
           "WANDB_SILENT": "true"}  # fmt: skip
    args = ["--models", str(USER_MODELS), "--llm-name", "HashLLM",
            "--task-name", str(letters_task), "--batch-size", "1", "--output-dir", str(tmp_path / "out"),
            "--wandb-project", "evals", "--wandb-mode", "offline"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EVAL, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "out").glob("*/wandb/offline-run-*/*.wandb")):
        time.sleep(0.05)  # the run opens when the evaluation starts; scoring then sleeps
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    bundle = _only_bundle(tmp_path / "out")
    assert not Bundle(bundle).is_complete()
    (interrupted,) = _runs(bundle)
    assert interrupted.preempting == 1
    assert interrupted.exit_code != 0
    env["EF_TEST_SLEEP"] = "0"
    done = subprocess.run([sys.executable, "-c", SLOW_EVAL, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    first, resumed = _runs(bundle)
    assert resumed.run.run_id == first.run.run_id
    assert resumed.exit_code == 0
    assert resumed.summary["letters/acc/n"] == 6


def test_no_secret_reaches_anything_logged(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET_KEY)
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 34)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-" + "z" * 29)
    secret_arg = "sk-" + "q" * 40
    result = cli("--models", USER_MODELS, "--llm-name", "HashLLM",
                 "--llm-args", f"api_key={secret_arg}", "--task-name", "tiny-letters", "--num-samples", "8",
                 "--output-dir", tmp_path / "out", *OFFLINE)  # fmt: skip
    assert result.code == 0, result.err
    secrets = [SECRET_KEY, "hf_" + "t" * 34, "aws-secret-" + "z" * 29, secret_arg]
    scanned = 0
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "wandb-data").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}... found in {path}"
    assert scanned > 10
    assert run_files(_only_bundle(tmp_path / "out") / "wandb")
    for secret in secrets:
        assert secret not in result.out + result.err


def test_training_loop_scores_keyed_to_a_step_metric(bundle, tmp_path):
    import wandb

    run = wandb.init(project="train", mode="offline", dir=str(tmp_path), settings=wandb.Settings(silent=True))
    run.log({"loss": 1.0}, step=500)  # the run is already far ahead
    logged = log_to_training_run(run, bundle, step=100)
    run.finish()
    (path,) = run_files(tmp_path / "wandb")
    log = read_run(path)
    history = [h for h in log.history if "trainer/global_step" in h]
    assert history
    assert history[-1]["trainer/global_step"] == 100
    assert history[-1]["eval/tiny-letters/acc"] == logged["eval/tiny-letters/acc"]
    assert "metric" in log.kinds  # define_metric recorded, so W&B plots against the step metric


def _stored(fake_wandb, version, path: str) -> bytes:
    (found,) = [f for f in version.files if f.path == path]
    return fake_wandb.s3.get_object(Bucket=fake_wandb.bucket, Key=found.storage_key)["Body"].read()


def test_online_run_records_config_results_lineage_and_registry_link(cli, fake_wandb, tmp_path, monkeypatch):
    """A real ``wandb.init(mode="online")``: the SDK's service upserts the run, streams history and
    summary, uploads and commits the results artifact, records lineage and links it, all over
    HTTP to the fake server, which is then read back as the W&B UI would show it."""
    import wandb

    from tests.registry.test_resolver import _register_shipped

    _register_shipped(fake_wandb)
    fake_wandb.add_version("wandb-registry-data", "tokenizer", [fake_wandb.stored_file("t.json", b"{}")])
    fake_wandb.add_registry("evals")
    monkeypatch.setenv("WANDB_ADDITIONAL_ARTIFACT_REFERENCES", "wandb-registry-data/tokenizer:v0")
    online = ("--wandb-project", "evals", "--wandb-mode", "online", "--wandb-registry", "evals")
    result = cli("--checkpoint", "tiny:prod", "--task-name", "tiny-letters", "--num-samples", "8",
                 "--output-dir", tmp_path / "out", *online)  # fmt: skip
    assert result.code == 0, result.err
    bundle = _only_bundle(tmp_path / "out")
    spec = build_spec(Bundle(bundle), WandbOptions(project="evals"))
    run = fake_wandb.run("evals", spec.run_id)
    assert run.group == "tiny:v0"
    assert run.exit_code == 0
    assert run.config["checkpoint_version"] == "v0"
    assert "prod" in run.config["checkpoint_aliases"]
    assert run.config["checkpoint_qualified_name"] == "acme-org/wandb-registry-model/tiny:v0"
    results = json.loads((bundle / "results.json").read_text())["metrics"]
    assert run.summary["tiny-letters/acc"] == results["overall"]["acc"]["value"]
    assert run.summary["tiny-letters/samples"]["nrows"] == 8  # the table, uploaded as a run file
    assert any(name.startswith("media/table/tiny-letters/samples") for name in run.files), list(run.files)

    api = wandb.Api()
    checkpoint = api.artifact("wandb-registry-model/tiny:v0")
    tokenizer = api.artifact("wandb-registry-data/tokenizer:v0")
    # The lineage edges the server records: this run used exactly these versions.
    assert fake_wandb.uses == [("alice", "evals", spec.run_id, a.id) for a in (checkpoint, tokenizer)]
    logged = api.artifact(f"alice/evals/{spec.artifact_name}:{spec.artifact_alias}")  # content-hash alias
    version = fake_wandb._version(logged.id)
    assert version.run == ("alice", "evals", spec.run_id)
    assert logged.type == "eval-results"
    assert sorted(f.path for f in version.files) == [
        "eval.log", "metadata.json", "results.json", "samples.jsonl", "samples_table.table.json"]  # fmt: skip
    assert _stored(fake_wandb, version, "results.json") == (bundle / "results.json").read_bytes()
    linked = api.artifact("wandb-registry-evals/eval-results:latest")
    assert linked.id == logged.id
    entry = ledger.last(bundle, "wandb")
    assert entry is not None
    assert entry["status"] == "logged"
    assert entry["pending"] == []

    # The same bundle uploaded again: the server deduplicates, no second version or link.
    again = cli("upload", *online, bundle)
    assert again.code == 0, again.err
    assert len(fake_wandb.collections[("acme-org", "wandb-registry-evals", "eval-results")].members) == 1
    assert len(fake_wandb.collections[("alice", "evals", spec.artifact_name)].members) == 1


def test_linking_into_a_registry_that_does_not_exist_names_it(cli, bundle, fake_wandb):
    result = cli("upload", "--wandb-project", "evals", "--wandb-mode", "online", "--wandb-registry", "nope",
                 bundle)  # fmt: skip
    assert result.code == 7, result.err
    assert "registry link" in result.err, result.err
    assert "wandb-registry-nope" in result.err, result.err
    assert "check that --wandb-registry names a registry" in result.err
    assert "results artifact" in result.err  # what went through before the failure
    assert fake_wandb.calls.count("LinkArtifact") == 1  # a 404 is not retried
    assert VALID_KEY not in result.err
    assert Bundle(bundle).is_complete()


def test_failure_mid_run_names_what_was_logged_and_what_was_not(cli, tmp_path, monkeypatch):
    from wandb.sdk import wandb_run

    def refused(self, *args, **kwargs):
        raise RuntimeError("HTTP 500: artifact upload failed")

    monkeypatch.setattr(wandb_run.Run, "log_artifact", refused)
    result = cli(*EVAL, "--output-dir", tmp_path / "out", *OFFLINE)
    assert result.code == 7
    bundle = _only_bundle(tmp_path / "out")
    assert Bundle(bundle).is_complete()
    assert "W&B samples table failed" in result.err
    assert "logged before that: config, summary)" in result.err
    # offline, half a log is removed (a sync would send it); the ledger says what got through
    assert _runs(bundle) == []
    assert not list((bundle / "wandb").glob("offline-run-*"))
    (entry,) = [e for e in ledger.read(bundle) if e["destination"] == "wandb"]
    assert entry["status"] == "failed"
    assert entry["logged"] == ["config", "summary"]
    assert f"eval_framework upload {bundle} --wandb-project evals" in result.err


def test_a_rejected_key_logs_offline_instead_of_losing_the_run(cli, tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        server = _rejecting_server(monkeypatch, stack)
        result = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals")
    assert result.code == 0, result.err
    assert len(server.requests) == 1  # asked once, not retried
    bundle = _only_bundle(tmp_path / "out")
    (log,) = _runs(bundle)
    assert log.summary["tiny-letters/acc/n"] == 24
    assert "wandb sync" in result.err
    assert "rejected the API key" in result.err
    assert SECRET_KEY not in result.err
    assert ledger.last(bundle, "wandb")["mode"] == "offline"


def test_a_malformed_key_is_said_to_be_malformed_without_asking(cli, tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        server = _rejecting_server(monkeypatch, stack)
        monkeypatch.setenv("WANDB_API_KEY", "short-key")
        result = cli(*EVAL, "--output-dir", tmp_path / "out", "--wandb-project", "evals")
    assert result.code == 0, result.err
    assert server.requests == []  # no server was contacted
    assert "WANDB_API_KEY is malformed" in result.err
    assert "rejected" not in result.err
    assert "short-key" not in result.err


def test_uploading_many_bundles_says_it_once(cli, tmp_path, monkeypatch):
    for n in ("16", "24"):
        assert cli(*EVAL[:-1], n, "--output-dir", tmp_path / "out").code == 0
    with contextlib.ExitStack() as stack:
        server = _rejecting_server(monkeypatch, stack)
        result = cli("upload", tmp_path / "out", "--wandb-project", "evals")
    assert result.code == 0, result.err
    assert len(server.requests) == 1  # the server is asked once
    assert result.err.count("rejected the API key") == 1
    assert result.err.count("wandb sync") == 2
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    result = cli("upload", tmp_path / "out", "--wandb-project", "evals")
    assert result.code == 0
    assert result.err.count("no W&B API key found") == 1


def test_a_bad_wandb_mode_names_where_it_came_from(monkeypatch):
    from eval_framework.errors import ConfigError
    from eval_framework.sinks.wandb_mode import choose_mode
    from eval_framework.sinks.wandb_spec import WandbOptions

    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(ConfigError, match=r"WANDB_MODE \(environment or \.env\) 'bogus' is not a mode"):
        choose_mode(WandbOptions(project="p"))
    with pytest.raises(ConfigError, match=r"--wandb-mode 'nope' is not a mode"):
        choose_mode(WandbOptions(project="p", mode="nope"))  # type: ignore[arg-type]


def test_a_server_failing_mid_run_online_keeps_the_bundle_and_says_what_got_through(cli, bundle, fake_wandb,
                                                                                    monkeypatch):  # fmt: skip
    """The run starts, then the server fails every artifact creation with 500: wandb-core retries,
    the upload fails, and the message says what was logged and how to finish."""
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS", "0.5")
    fake_wandb.server.per_operation["CreateArtifact"] = "500"
    before = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    result = cli("upload", "--wandb-project", "evals", "--wandb-mode", "online", bundle)
    assert result.code == 7, result.err
    assert "results artifact" in result.err, result.err
    assert "config, summary" in result.err, result.err
    assert f"eval_framework upload {bundle}" in " ".join(result.err.split()), result.err
    assert VALID_KEY not in result.err
    spec = build_spec(Bundle(bundle), WandbOptions(project="evals"))
    assert fake_wandb.run("evals", spec.run_id).config["task_name"] == "tiny-letters"  # got through
    assert ("alice", "evals", spec.artifact_name) not in fake_wandb.collections
    assert {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file() and p.name in before} == before
    entry = ledger.last(bundle, "wandb")
    assert entry is not None
    assert entry["status"] == "failed"


def test_the_python_api_leaves_the_environment_alone_and_command_mode_stages_in_the_bundle(
    bundle, tmp_path, monkeypatch
):
    """Outside ``command_mode`` no environment variable is written (the SDK stages tables under
    the caller's WANDB_DATA_DIR); inside, the tables are staged in the bundle and the caller's
    environment is back afterwards."""
    from eval_framework import command_mode, log_bundle

    twin = tmp_path / "twin" / bundle.name
    shutil.copytree(bundle, twin)
    written: list[str] = []
    real_set, real_del = os._Environ.__setitem__, os._Environ.__delitem__

    def watch_set(self, name, value):
        written.append(name)
        real_set(self, name, value)

    def watch_del(self, name):
        written.append(name)
        real_del(self, name)

    monkeypatch.setattr(os._Environ, "__setitem__", watch_set)
    monkeypatch.setattr(os._Environ, "__delitem__", watch_del)
    before = dict(os.environ)

    log_bundle(bundle, WandbOptions(project="evals", mode="offline"))
    assert not {"WANDB_DATA_DIR", "WANDB_MODE"} & set(written)
    assert not (bundle / "wandb" / "sdk-data").exists()
    assert any((tmp_path / "wandb-data" / "artifacts" / "staging").iterdir())  # the caller's own

    with command_mode():
        log_bundle(twin, WandbOptions(project="evals", mode="offline"))
    assert {"WANDB_DATA_DIR", "WANDB_MODE"} <= set(written)
    assert any((twin / "wandb" / "sdk-data" / "artifacts" / "staging").iterdir())
    # the SDK registers its own service (WANDB_SERVICE); what eval_framework set is restored
    assert [os.environ.get(k) for k in ("WANDB_DATA_DIR", "WANDB_MODE")] == [
        before.get("WANDB_DATA_DIR"),
        before.get("WANDB_MODE"),
    ]


def test_an_offline_upload_prints_the_online_command_for_what_it_could_not_do(cli, bundle):
    result = cli("upload", bundle, *OFFLINE, "--wandb-registry", "reg/coll")
    assert result.code == 0, result.err
    (line,) = [x for x in result.err.splitlines() if x.startswith("Still to do online (registry link)")]
    assert line.count("--wandb-mode") == 1  # one mode, the one that can do it
    assert line.endswith("--wandb-mode online")
    assert "--wandb-registry reg/coll" in line
    again = cli("upload", bundle, *OFFLINE, "--wandb-registry", "reg/coll")
    assert "already logged offline" in again.err
    assert line in again.err.splitlines()  # still said: nothing online has happened yet
