"""``log_mode: multi_task`` of the wandb destination: one run per checkpoint version holding every
task exported for it. Offline through the real SDK, read back from the runs' transaction logs;
online through the real SDK and wandb-core against the fake W&B server, read back from its state;
two real processes exporting two tasks to one run at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eval_framework import export_results
from eval_framework.cli import main
from eval_framework.results import Bundle
from eval_framework.sinks import ledger, wandb_multi_task
from eval_framework.sinks.base import checkpoint_version_key
from eval_framework.sinks.wandb_multi_records import multi_run_id
from tests.fakes.wandb_registry_http import RegistryServer, registry_server
from tests.fakes.wandb_runs import Rendezvous
from tests.fakes.wandb_service import VALID_KEY, FakeWandb
from tests.wandb_log_reader import RunLog, flush_service, read_run, run_files

REPO = Path(__file__).parents[2]
LETTERS_ROWS = [
    {"q": "copy: abcd ->", "options": ["abcd", "dcba", "badc"], "gold": 0, "kind": "copy"},
    {"q": "copy: wxyz ->", "options": ["zyxw", "wxyz", "xwzy"], "gold": 1, "kind": "copy"},
    {"q": "reverse: abcd ->", "options": ["abcd", "dcba", "badc"], "gold": 1, "kind": "reverse"},
    {"q": "reverse: mnop ->", "options": ["ponm", "mnop", "nmpo"], "gold": 0, "kind": "reverse"},
    {"q": "copy: qrst ->", "options": ["qrst", "tsrq", "rqts"], "gold": 0, "kind": "copy"},
    {"q": "reverse: efgh ->", "options": ["efgh", "fehg", "hgfe"], "gold": 2, "kind": "reverse"},
]
EMBEDDED = ("--llm-name", "embedded", "--llm-args", "version=v0")


def _letters_task(where: Path) -> Path:
    """A second task (a YAML task over local JSONL) for the same checkpoint."""
    data = where / "letters"
    data.mkdir(parents=True)
    (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in LETTERS_ROWS))
    task = where / "letters.yaml"
    task.write_text("name: letters\nlanguage: en\ndata:\n  eval: letters/eval.jsonl\n"
                    "prompt: '{q}'\nchoices: options\ntarget: gold\nsubject: kind\n")  # fmt: skip
    return task


def _evaluate(out: Path, *args: str) -> Path:
    """One real evaluation into ``out``; its bundle."""
    before = set(out.iterdir()) if out.exists() else set()
    assert main([*args, "--output-dir", str(out)]) == 0
    (made,) = [p for p in set(out.iterdir()) - before if p.is_dir()]
    return made


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """Finished bundles of two tasks of the embedded checkpoint (made once; tests copy them)."""
    root = tmp_path_factory.mktemp("multi-task-bundles")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        task = _letters_task(root)
        out = root / "out"
        return {
            "tiny-letters": _evaluate(out, *EMBEDDED, "--task-name", "tiny-letters", "--num-samples", "8"),
            "letters": _evaluate(out, *EMBEDDED, "--task-name", str(task)),
        }


@pytest.fixture(autouse=True)
def _own_state(monkeypatch, tmp_path) -> None:
    """This machine's multi_task state (locks, known tasks) private to the test."""
    monkeypatch.setenv("EVAL_FRAMEWORK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(wandb_multi_task, "REPAIR_WAIT_S", 0.0)


def _copies(made: dict[str, Path], where: Path) -> dict[str, Path]:
    import shutil

    return {task: Path(shutil.copytree(path, where / path.name)) for task, path in made.items()}


def _runs(*bundles: Path) -> list[RunLog]:
    """Every offline run in these bundles, oldest first."""
    flush_service()
    paths = [p for b in bundles for p in run_files(b / "wandb")]
    return [read_run(p) for p in sorted(paths, key=lambda p: p.stat().st_mtime_ns)]


def _metrics(bundle: Path) -> dict:
    return json.loads((bundle / "results.json").read_text())["metrics"]


OFFLINE = {"project": "evals", "log_mode": "multi_task", "mode": "offline"}


def test_offline_one_run_per_checkpoint_version_with_each_task_under_its_name(made, tmp_path):
    bundles = _copies(made, tmp_path)
    first = export_results(bundles["tiny-letters"], dest="wandb", config=OFFLINE).exported[0]
    assert first.status == "created"
    (log,) = _runs(bundles["tiny-letters"])
    assert first.location == f"wandb sync {run_files(bundles['tiny-letters'] / 'wandb')[0].parent}"
    bundle = Bundle(bundles["tiny-letters"])
    assert log.run.run_id == f"ckpt-{checkpoint_version_key(bundle)[:24]}"
    assert log.run.run_group == "tiny-letters-v0"  # the checkpoint version's group, as per_task
    assert log.run.display_name == "tiny-letters-v0 all tasks"
    results = _metrics(bundles["tiny-letters"])
    assert log.summary["tiny-letters/acc"] == results["overall"]["acc"]["value"]
    assert log.summary["tiny-letters/acc/stderr"] == results["overall"]["acc"]["stderr"]
    assert log.summary["tiny-letters/acc/n"] == 8
    assert log.summary["tiny-letters/samples/_type"] == "table-file"
    settings = log.config["tasks"]["tiny-letters"]
    assert settings["num_samples"] == 8
    assert settings["evaluation_hash"] == bundle.metadata().natural_key
    assert log.config["checkpoint_name"] == "tiny-letters-v0"
    assert log.config["log_mode"] == "multi_task"
    (artifact,) = [a for a in log.artifacts if a.type == "eval-results"]  # the results artifact per task
    assert artifact.name == f"eval-{bundles['tiny-letters'].name}"
    record = json.loads((Path(run_files(bundles["tiny-letters"] / "wandb")[0].parent) / "files" /
                         "eval_framework" / "tasks" / "tiny-letters.json").read_text())  # fmt: skip
    assert record["summary"]["tiny-letters/acc"] == results["overall"]["acc"]["value"]
    assert record["settings"]["evaluation_hash"] == bundle.metadata().natural_key
    entry = ledger.last(bundles["tiny-letters"], "wandb", log_mode="multi_task")
    assert entry is not None
    assert entry["status"] == "offline"
    assert entry["task"] == "tiny-letters"


def test_offline_another_task_appends_and_a_re_export_replaces_its_values(made, tmp_path):
    bundles = _copies(made, tmp_path)
    assert _planned(bundles["tiny-letters"], OFFLINE) == "created"
    assert (
        export_results(bundles["tiny-letters"], dest="wandb", config=OFFLINE).exported[0].status == "created"
    )
    assert _planned(bundles["tiny-letters"], OFFLINE) == "unchanged"
    assert _planned(bundles["letters"], OFFLINE) == "updated"  # this machine knows the run holds a task
    second = export_results(bundles["letters"], dest="wandb", config=OFFLINE).exported[0]
    assert second.status == "updated"  # the run holds a task already: this one is appended
    _, appended = _runs(*bundles.values())
    assert appended.run.run_id == _runs(bundles["tiny-letters"])[0].run.run_id  # one run
    letters, tiny = _metrics(bundles["letters"]), _metrics(bundles["tiny-letters"])
    assert appended.summary["letters/acc"] == letters["overall"]["acc"]["value"]
    assert appended.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]  # not lost
    assert set(appended.config["tasks"]) == {"letters", "tiny-letters"}
    assert appended.config["tasks"]["letters"]["num_samples"] == 6

    narrowed = {**OFFLINE, "log_metrics": ["acc_norm"]}
    third = export_results(bundles["tiny-letters"], dest="wandb", config=narrowed).exported[0]
    assert third.status == "updated"
    replaced = _runs(*bundles.values())[-1]
    assert replaced.summary["tiny-letters/acc_norm"] == tiny["overall"]["acc_norm"]["value"]
    assert "tiny-letters/acc" not in replaced.summary  # no longer exported: gone
    assert "tiny-letters/acc/stderr" not in replaced.summary
    assert replaced.summary["letters/acc"] == letters["overall"]["acc"]["value"]  # the other task kept
    again = export_results(bundles["tiny-letters"], dest="wandb", config=narrowed).exported[0]
    assert again.status == "unchanged"  # the same export waits for wandb sync: no second copy
    assert len(_runs(*bundles.values())) == 3
    # One command syncs every offline log of the run, the newest (holding every task) last.
    dirs = sorted((p.parent for b in bundles.values() for p in run_files(b / "wandb")),
                  key=lambda d: d.stat().st_mtime_ns)  # fmt: skip
    assert again.location == "wandb sync " + " ".join(str(d) for d in sorted(dirs, key=_started))


def _planned(bundle: Path, config: dict) -> str:
    (plan,) = export_results(bundle, dest="wandb", config=config, dry_run=True).planned
    return plan[2]


def test_writers_of_one_run_on_one_machine_take_turns(made, tmp_path, monkeypatch):
    """The lock is per run, under state_dir: while another export of the run holds it, an export
    waits (here: gives up at once), sends nothing, and says what to do."""
    from filelock import FileLock

    from eval_framework.errors import ExportError
    from eval_framework.sinks import wandb_multi_state

    bundles = _copies(made, tmp_path)
    config = {**OFFLINE, "state_dir": str(tmp_path / "machine")}
    monkeypatch.setattr(wandb_multi_state, "LOCK_WAIT_S", 0.1)
    run_id = multi_run_id(Bundle(bundles["letters"]), None)
    held = wandb_multi_state.run_dir(tmp_path / "machine", None, "evals", run_id)
    held.mkdir(parents=True)
    says = r"another export of this run on this machine held .*; rerun when it is done"
    with FileLock(str(held / "lock")), pytest.raises(ExportError, match=says):
        export_results(bundles["letters"], dest="wandb", config=config)
    assert not run_files(bundles["letters"] / "wandb")
    assert export_results(bundles["letters"], dest="wandb", config=config).exported[0].status == "created"


def _started(offline_dir: Path) -> float:
    return read_run(next(offline_dir.glob("run-*.wandb"))).run.start_time.ToNanoseconds()


# ---- online, against the fake W&B server ---------------------------------------------------------


@dataclass
class Service:
    fake: FakeWandb
    server: RegistryServer
    bundles: dict[str, Path]  #: finished bundles of two tasks of the registry checkpoint tiny:v0


@pytest.fixture(scope="module")
def service(s3_server, tmp_path_factory) -> Iterator[Service]:
    """The fake W&B server for the module, with a registry checkpoint evaluated on two tasks."""
    import boto3

    from tests.registry.test_resolver import _register_shipped

    keys = {"aws_access_key_id": "testing-key-id", "aws_secret_access_key": "testing-secret-key"}
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **keys)
    fake = FakeWandb(s3, f"wandb-storage-{uuid.uuid4().hex[:12]}")
    root = tmp_path_factory.mktemp("multi-task-online")
    with registry_server(fake) as server, pytest.MonkeyPatch.context() as mp:
        _register_shipped(fake)
        mp.chdir(root)
        for name, value in _online_env(server.url, root).items():
            mp.setenv(name, value)
        task = _letters_task(root)
        out, ckpt = root / "out", ("--checkpoint", "tiny:prod")
        bundles = {
            "tiny-letters": _evaluate(out, *ckpt, "--task-name", "tiny-letters", "--num-samples", "8"),
            "letters": _evaluate(out, *ckpt, "--task-name", str(task)),
        }
        flush_service()
        yield Service(fake, server, bundles)
        assert not server.unknown, f"operations the fake W&B server does not implement: {server.unknown}"


def _online_env(url: str, root: Path) -> dict[str, str]:
    return {"WANDB_BASE_URL": url, "WANDB_API_KEY": VALID_KEY, "WANDB_SILENT": "true",
            "WANDB_ARTIFACT_DIR": str(root / "checkpoints")}  # fmt: skip


@pytest.fixture
def online(service, monkeypatch, tmp_path) -> Service:
    for name, value in _online_env(service.server.url, tmp_path).items():
        monkeypatch.setenv(name, value)
    return service


def _project() -> str:
    return f"evals-{uuid.uuid4().hex[:8]}"  # the fake's state lives for the module: a project per test


def _record(run, task: str) -> dict:
    return json.loads(run.files[f"eval_framework/tasks/{task}.json"])


def test_online_append_replace_lineage_and_unchanged(online, tmp_path):
    import wandb

    bundles = _copies(online.bundles, tmp_path)
    project = _project()
    config = {"project": project, "log_mode": "multi_task"}
    first = export_results(bundles["tiny-letters"], dest="wandb", config=config).exported[0]
    assert first.status == "created"
    run_id = multi_run_id(Bundle(bundles["tiny-letters"]), None)
    run = online.fake.run(project, run_id)
    assert run.group == "tiny:v0"  # the checkpoint version's group, as per_task runs
    assert run.exit_code == 0
    tiny, letters = _metrics(bundles["tiny-letters"]), _metrics(bundles["letters"])
    assert run.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]
    assert run.summary["tiny-letters/samples"]["nrows"] == 8
    assert (
        run.config["tasks"]["tiny-letters"]["evaluation_hash"]
        == Bundle(bundles["tiny-letters"]).metadata().natural_key
    )
    assert run.config["checkpoint_qualified_name"] == "acme-org/wandb-registry-model/tiny:v0"
    assert (
        _record(run, "tiny-letters")["summary"]["tiny-letters/acc/stderr"] == tiny["overall"]["acc"]["stderr"]
    )
    # lineage: the run used exactly the checkpoint version; the results artifact is the run's
    checkpoint = wandb.Api().artifact("wandb-registry-model/tiny:v0")
    assert ("alice", project, run_id, checkpoint.id) in online.fake.uses
    assert ("alice", project, f"eval-{bundles['tiny-letters'].name}") in online.fake.collections

    second = export_results(bundles["letters"], dest="wandb", config=config).exported[0]
    assert second.status == "updated"
    assert second.location == first.location  # one run
    assert run.summary["letters/acc"] == letters["overall"]["acc"]["value"]
    assert run.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]  # appended, not lost
    assert set(run.config["tasks"]) == {"letters", "tiny-letters"}
    assert _record(run, "letters")["settings"]["num_samples"] == 6

    narrowed = {**config, "log_metrics": ["acc_norm"]}
    third = export_results(bundles["tiny-letters"], dest="wandb", config=narrowed).exported[0]
    assert third.status == "updated"
    assert run.summary["tiny-letters/acc_norm"] == tiny["overall"]["acc_norm"]["value"]
    assert "tiny-letters/acc" not in run.summary  # replaced: the metric no longer exported is gone
    assert "tiny-letters/reverse/acc/n" not in run.summary
    assert "tiny-letters/acc" not in _record(run, "tiny-letters")["summary"]
    assert run.summary["letters/acc"] == letters["overall"]["acc"]["value"]  # the other task kept

    sessions = len(run.summaries)
    again = export_results(bundles["tiny-letters"], dest="wandb", config=narrowed).exported[0]
    assert again.status == "unchanged"
    assert len(run.summaries) == sessions  # nothing was sent
    forced = export_results(bundles["tiny-letters"], dest="wandb", config=narrowed, force=True).exported[0]
    assert forced.status == "updated"
    assert len(run.summaries) > sessions
    entry = ledger.last(bundles["tiny-letters"], "wandb", log_mode="multi_task")
    assert entry is not None
    assert entry["status"] == "logged"
    assert entry["pending"] == []
    assert f"lineage {checkpoint.qualified_name}" in entry["logged"]


def test_offline_lineage_is_pending_and_the_sync_command_sends_every_task(online, tmp_path):
    bundles = _copies(online.bundles, tmp_path)
    project = _project()
    config = {"project": project, "log_mode": "multi_task", "mode": "offline"}
    export_results(bundles["tiny-letters"], dest="wandb", config=config)
    done = export_results(bundles["letters"], dest="wandb", config=config).exported[0]
    entry = ledger.last(bundles["letters"], "wandb", log_mode="multi_task")
    assert entry is not None
    assert entry["pending"] == [
        "lineage acme-org/wandb-registry-model/tiny:v0"
    ]  # offline cannot use_artifact
    run_id = multi_run_id(Bundle(bundles["letters"]), None)
    assert (project, run_id) not in {(k[1], k[2]) for k in online.fake.runs}  # nothing sent yet
    flush_service()
    command = done.location.split()
    assert command[:2] == ["wandb", "sync"]
    synced = subprocess.run([str(Path(sys.executable).with_name("wandb")), *command[1:]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    run = online.fake.run(project, run_id)
    tiny, letters = _metrics(bundles["tiny-letters"]), _metrics(bundles["letters"])
    assert run.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]
    assert run.summary["letters/acc"] == letters["overall"]["acc"]["value"]
    assert {"eval_framework/tasks/letters.json", "eval_framework/tasks/tiny-letters.json"} <= set(run.files)
    # the online export that finishes what offline could not: the lineage
    online_config = {**config, "mode": "online"}
    assert (
        export_results(bundles["letters"], dest="wandb", config=online_config).exported[0].status == "updated"
    )
    assert any(use[1:3] == (project, run_id) for use in online.fake.uses)
    assert run.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]


EXPORT = [sys.executable, "-m", "eval_framework", "export"]


def test_two_processes_exporting_two_tasks_at_once_lose_nothing(online, tmp_path):
    """Two OS processes (two machines: each its own lock dir) resume the new run at the same time,
    so each starts from the same (empty) summary and sends its own whole: one replaces the other's.
    The read-back finds the lacking task and repairs the summary from both task files."""
    bundles = _copies(online.bundles, tmp_path)
    project = _project()
    online.fake.resume_rendezvous = Rendezvous(2)  # both read the run's state before either writes
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for n, bundle in enumerate(bundles.values()):
        config = {"project": project, "log_mode": "multi_task", "state_dir": str(tmp_path / f"machine-{n}")}
        command = [*EXPORT, str(bundle), "--dest", "wandb", "--config", json.dumps(config)]
        procs.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        online.fake.resume_rendezvous = None
    assert [p.returncode for p in procs] == [0, 0], outputs
    run = online.fake.run(project, multi_run_id(Bundle(bundles["letters"]), None))
    tiny, letters = _metrics(bundles["tiny-letters"]), _metrics(bundles["letters"])
    assert run.summary["tiny-letters/acc"] == tiny["overall"]["acc"]["value"]
    assert run.summary["letters/acc"] == letters["overall"]["acc"]["value"]
    assert run.summary["letters/samples"]["nrows"] == 6
    assert run.summary["tiny-letters/samples"]["nrows"] == 8
    assert set(run.config["tasks"]) == {"letters", "tiny-letters"}
    assert {"eval_framework/tasks/letters.json", "eval_framework/tasks/tiny-letters.json"} <= set(run.files)
    # The race happened (a whole summary without the other task reached the server) and was repaired.
    assert any("letters/acc" not in s or "tiny-letters/acc" not in s for s in run.summaries)
    assert run.resumes >= 1
