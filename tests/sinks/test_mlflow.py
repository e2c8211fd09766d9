"""The mlflow destination against a real MLflow tracking server on 127.0.0.1: everything read back
through MLflow's own client (params, metrics, tags, artifacts, run counts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from eval_framework import export_results
from eval_framework.errors import ConfigError
from eval_framework.results import Bundle
from eval_framework.sinks import mlflow_conn, mlflow_records
from eval_framework.sinks.mlflow_names import decode, encode, split_task_key, task_key
from tests.conftest import USER_MODELS
from tests.fakes.loopback import answer_json, loopback_server
from tests.mlflow_server import free_port, mlflow_server

EVAL = ("--models", USER_MODELS, "--llm-name", "HashLLM")
EVAL_TAG = "eval_framework.evaluation_hash"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mlflow(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server)


@pytest.fixture
def config(server, request) -> dict[str, Any]:
    """Each test in an experiment of its own."""
    return {"tracking_uri": server, "experiment_name": f"test-{request.node.name}"}


def _evaluate(cli, out: Path, tasks: str = "tiny-letters,tiny-letters-gen", n: int = 6) -> list[Path]:
    result = cli(*EVAL, "--task-name", tasks, "--num-samples", str(n), "--output-dir", out)
    assert result.code == 0, result.err
    return sorted((p for p in out.iterdir() if p.is_dir() and p.name != "invocations"), key=_task)


def _task(bundle: Path) -> str:
    return bundle.name.split("__")[1]


@pytest.fixture
def bundles(cli, tmp_path) -> list[Path]:
    """One model evaluated on two tasks: tiny-letters (acc, acc_norm) and tiny-letters-gen
    (exact_match), 6 samples each."""
    found = _evaluate(cli, tmp_path / "out")
    assert [_task(p) for p in found] == ["tiny-letters", "tiny-letters-gen"]
    return found


def _runs(mlflow, config: dict[str, Any], deleted: bool = False) -> list[Any]:
    from mlflow.entities import ViewType

    experiment = mlflow.get_experiment_by_name(config["experiment_name"])
    view = ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY
    return list(mlflow.search_runs([experiment.experiment_id], run_view_type=view)) if experiment else []


def _overall(bundle: Path) -> dict[str, dict[str, Any]]:
    return json.loads((bundle / "results.json").read_text())["metrics"]["overall"]


def _metadata(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "metadata.json").read_text())


def _ledger(bundle: Path) -> list[dict[str, Any]]:
    path = bundle / "exports.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_per_task_makes_a_run_per_evaluation_with_its_params_metrics_tags_and_files(
    bundles, config, mlflow, tmp_path
):
    summary = export_results(bundles, dest="mlflow", config=config)
    assert summary.count("mlflow", "created") == 2
    runs = {run.data.params["task"]: run for run in _runs(mlflow, config)}
    assert sorted(runs) == ["tiny-letters", "tiny-letters-gen"]
    for bundle in bundles:
        meta = _metadata(bundle)
        run = runs[meta["task"]["name"]]
        assert run.data.params == {
            "task": meta["task"]["name"],
            "num_fewshot": "0",
            "num_samples": "6",
            "seed": "1234",
            "model": "HashLLM",
            "checkpoint": "HashLLM",
        }
        expected = {}
        for name, stats in _overall(bundle).items():
            expected |= {name: stats["value"], f"{name}_stderr": stats["stderr"], f"{name}_n": stats["n"]}
        assert run.data.metrics == expected
        tags = run.data.tags
        assert tags[EVAL_TAG] == meta["natural_key"]
        assert tags["eval_framework.checkpoint"] == "HashLLM"
        assert "eval_framework.checkpoint_version" not in tags  # not a registry checkpoint: none
        assert tags["eval_framework.version"] == meta["framework"]["version"]
        assert tags["mlflow.runName"] == f"HashLLM {meta['task']['name']} 0-shot n=6"
        got = Path(mlflow.download_artifacts(run.info.run_id, "bundle", str(tmp_path / run.info.run_id)))
        assert sorted(p.name for p in got.iterdir()) == [
            "eval.log",
            "metadata.json",
            "results.json",
            "samples.jsonl",
        ]
        for path in got.iterdir():
            assert path.read_bytes() == (bundle / path.name).read_bytes()
        (entry,) = _ledger(bundle)
        assert entry["status"] == "created"
        assert (
            entry["location"]
            == f"{config['tracking_uri']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        )
    assert not [name for name in os.environ if name.startswith("MLFLOW_HTTP_")]  # ours were restored


def test_a_registry_checkpoint_is_named_by_its_tags(bundles):
    """A registry checkpoint's name, version, qualified name and digest become tags."""
    path = bundles[0] / "metadata.json"
    meta = json.loads(path.read_text())
    artifact = {"qualified_name": "acme/wandb-registry-model/llama-sft:v7", "digest": "d1g3st"}
    meta["model"]["identity"]["artifact"] = artifact
    path.write_text(json.dumps(meta))  # what a registry checkpoint's bundle says
    record = mlflow_records.build(Bundle(bundles[0]), mlflow_records.Options())
    assert record.params["checkpoint"] == "llama-sft:v7"
    assert {k: v for k, v in record.tags.items() if k.startswith("eval_framework.checkpoint")} == {
        "eval_framework.checkpoint": "llama-sft",
        "eval_framework.checkpoint_version": "v7",
        "eval_framework.checkpoint_qualified_name": artifact["qualified_name"],
        "eval_framework.checkpoint_digest": "d1g3st",
    }
    assert record.tags["mlflow.runName"] == "llama-sft:v7 tiny-letters 0-shot n=6"


def test_log_artifacts_false_uploads_no_file(bundles, config, mlflow):
    export_results(bundles[0], dest="mlflow", config={**config, "log_artifacts": False})
    (run,) = _runs(mlflow, config)
    assert mlflow.list_artifacts(run.info.run_id) == []
    assert "eval_framework.artifacts_sha256" not in run.data.tags


def test_exporting_again_is_unchanged_even_without_the_ledger_and_force_sends_again(bundles, config, mlflow):
    export_results(bundles, dest="mlflow", config=config)
    first = sorted(run.info.run_id for run in _runs(mlflow, config))
    assert export_results(bundles, dest="mlflow", config=config).count("mlflow", "unchanged") == 2
    for bundle in bundles:  # as on another machine: the run is found by its tag
        (bundle / "exports.jsonl").unlink()
    assert export_results(bundles, dest="mlflow", config=config).count("mlflow", "unchanged") == 2
    forced = export_results(bundles[:1], dest="mlflow", config=config, force=True)
    assert forced.count("mlflow", "updated") == 1
    assert sorted(run.info.run_id for run in _runs(mlflow, config)) == first
    run = next(r for r in _runs(mlflow, config) if r.data.params["task"] == "tiny-letters")
    assert len(mlflow.get_metric_history(run.info.run_id, "acc")) == 2  # sent again


def test_a_changed_config_updates_the_same_run_and_never_fails_on_params(bundles, config, mlflow):
    export_results(
        bundles[0], dest="mlflow", config={**config, "description": "first", "tags": {"team": "a"}}
    )
    again = {
        **config,
        "description": "second",
        "tags": {"team": "b"},
        "extra_metadata": {"gpu": "H100", "n": 8},
    }
    assert export_results(bundles[0], dest="mlflow", config=again).count("mlflow", "updated") == 1
    (run,) = _runs(mlflow, config)
    assert run.data.tags["mlflow.note.content"] == "second"
    assert run.data.tags["team"] == "b"
    assert run.data.tags["gpu"] == "H100"
    assert run.data.tags["n"] == "8"  # extra_metadata: tags (they may change; params cannot)
    assert run.data.params["task"] == "tiny-letters"


def test_log_metrics_keeps_the_matching_metrics_with_their_stderr_and_n(bundles, config, mlflow, cli):
    result = cli(
        "export", bundles[0], "--dest", "mlflow", "--log-metrics", "acc_norm", "--config", json.dumps(config)
    )
    assert result.code == 0, result.err
    (run,) = _runs(mlflow, config)
    stats = _overall(bundles[0])["acc_norm"]
    assert run.data.metrics == {
        "acc_norm": stats["value"],
        "acc_norm_stderr": stats["stderr"],
        "acc_norm_n": 6,
    }


@pytest.mark.parametrize(
    "name",
    ["acc", "acc_norm", "acc,none", "f1/macro", "exact match", "..x", ".x", "a:b", "pass@1", "bleu-4.0", "é"],
)
def test_metric_names_map_to_mlflow_and_back(name, mlflow, config):
    mapped = encode(name)
    assert decode(mapped) == name
    assert split_task_key(task_key("MMLU/stem", name)) == ("MMLU/stem", name)
    experiment = mlflow.create_experiment(f"{config['experiment_name']}-{len(name)}-{mapped}")
    run = mlflow.create_run(experiment).info.run_id
    mlflow.log_metric(run, mapped, 1.0)  # MLflow refuses a name it cannot take
    mlflow.log_metric(run, task_key("MMLU/stem", name), 2.0)
    assert {
        decode(key) if "/" not in key else split_task_key(key) for key in mlflow.get_run(run).data.metrics
    } == {
        name,
        ("MMLU/stem", name),
    }


def test_name_mapping_examples_are_as_documented():
    assert encode("acc,none") == "acc:2Cnone"
    assert encode("f1/macro") == "f1:2Fmacro"
    assert encode("acc_norm") == "acc_norm"
    assert encode(".x") == ":2Ex"


def test_multi_task_appends_a_task_and_replaces_a_task_exported_again(bundles, config, mlflow, cli, tmp_path):
    multi = {**config, "log_mode": "multi_task"}
    letters, gen = bundles
    assert export_results(letters, dest="mlflow", config=multi).count("mlflow", "created") == 1
    assert export_results(gen, dest="mlflow", config=multi).count("mlflow", "created") == 1  # appended
    (run,) = _runs(mlflow, multi)
    assert run.data.params == {"model": "HashLLM", "checkpoint": "HashLLM"}
    gen_stats = _overall(gen)["exact_match"]
    assert run.data.metrics["tiny-letters-gen/exact_match"] == gen_stats["value"]
    assert run.data.metrics["tiny-letters/acc"] == _overall(letters)["acc"]["value"]
    # tiny-letters again, another evaluation of it (9 samples): its values replace the 6-sample ones
    (nine,) = _evaluate(cli, tmp_path / "nine", "tiny-letters", n=9)
    assert export_results(nine, dest="mlflow", config=multi).count("mlflow", "updated") == 1
    (run,) = _runs(mlflow, multi)
    tags = run.data.tags
    assert tags["tiny-letters/num_samples"] == "9"
    assert tags["tiny-letters/evaluation_hash"] == _metadata(nine)["natural_key"]
    assert tags["tiny-letters-gen/num_samples"] == "6"  # the other task is kept
    for name, stats in _overall(nine).items():
        assert run.data.metrics[f"tiny-letters/{name}"] == stats["value"]
        assert run.data.metrics[f"tiny-letters/{name}_stderr"] == stats["stderr"]
        assert run.data.metrics[f"tiny-letters/{name}_n"] == 9
    assert run.data.metrics["tiny-letters-gen/exact_match"] == gen_stats["value"]
    assert EVAL_TAG not in tags  # a multi_task run is found by its checkpoint version, not an evaluation
    got = Path(mlflow.download_artifacts(run.info.run_id, "tiny-letters/results.json", str(tmp_path / "dl")))
    assert got.read_bytes() == (nine / "results.json").read_bytes()
    assert export_results([nine, gen], dest="mlflow", config=multi).count("mlflow", "unchanged") == 2


def test_a_group_gets_a_run_of_its_own_and_tags_may_be_a_list_of_names(bundles, config, mlflow):
    multi = {**config, "log_mode": "multi_task", "tags": ["flagged"]}
    export_results(bundles[0], dest="mlflow", config=multi)
    assert (
        export_results(bundles[0], dest="mlflow", config={**multi, "group": "nightly"}).count(
            "mlflow", "created"
        )
        == 1
    )
    runs = {run.data.tags.get("eval_framework.group"): run for run in _runs(mlflow, multi)}
    assert sorted(runs, key=str) == [None, "nightly"]
    assert runs["nightly"].data.tags["mlflow.runName"] == "HashLLM [nightly]"
    assert runs[None].data.tags["flagged"] == ""
    key = "eval_framework.checkpoint_version_hash"
    assert runs[None].data.tags[key] != runs["nightly"].data.tags[key]


CONCURRENT = textwrap.dedent(
    """
    import json, sys
    from eval_framework import export_results
    import mlflow.tracking  # everything imported before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    summary = export_results([sys.argv[1]], dest="mlflow", config=json.loads(sys.argv[2]))
    print(summary.exported[0].status, flush=True)
    """
)


def test_two_processes_exporting_two_tasks_at_once_make_one_run_holding_both(
    bundles, config, mlflow, letters_task, cli, tmp_path
):
    (yaml_bundle,) = _evaluate(cli, tmp_path / "yaml", str(letters_task))
    assert "__letters__" in yaml_bundle.name
    multi = {**config, "log_mode": "multi_task"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(b), json.dumps(multi)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for b in (*bundles, yaml_bundle)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:  # all start exporting together
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outcomes = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outcomes]
    assert sorted(out.split()[-1] for out, _ in outcomes) == ["created"] * 3
    (run,) = _runs(mlflow, multi)
    tasks = {split_task_key(key)[0] for key in run.data.metrics}
    assert tasks == {"tiny-letters", "tiny-letters-gen", "letters"}
    for bundle in (*bundles, yaml_bundle):
        task = _metadata(bundle)["task"]["name"]
        assert run.data.tags[f"{task}/evaluation_hash"] == _metadata(bundle)["natural_key"]
        for name, stats in _overall(bundle).items():
            assert run.data.metrics[f"{task}/{name}"] == stats["value"]


def test_duplicate_runs_left_by_a_race_are_folded_into_the_oldest(bundles, config, mlflow):
    """Two runs of one checkpoint version, as two exports racing on two machines could leave
    them: the next export keeps the oldest, copies the other's task into it, deletes the other."""
    multi = {**config, "log_mode": "multi_task"}
    letters, gen = bundles
    export_results(gen, dest="mlflow", config=multi)
    (younger,) = _runs(mlflow, multi)
    key = younger.data.tags["eval_framework.checkpoint_version_hash"]
    older = mlflow.create_run(
        younger.info.experiment_id,
        start_time=younger.info.start_time - 60_000,
        tags={"eval_framework.checkpoint_version_hash": key, "eval_framework.log_mode": "multi_task"},
    )
    assert export_results(letters, dest="mlflow", config=multi).count("mlflow", "created") == 1
    (run,) = _runs(mlflow, multi)
    assert run.info.run_id == older.info.run_id
    assert [r.info.run_id for r in _runs(mlflow, multi, deleted=True)] == [younger.info.run_id]
    assert run.data.metrics["tiny-letters-gen/exact_match"] == _overall(gen)["exact_match"]["value"]
    assert run.data.metrics["tiny-letters/acc"] == _overall(letters)["acc"]["value"]
    # the folded task's artifacts are not copied: its next export uploads them (an update)
    assert export_results(gen, dest="mlflow", config=multi).count("mlflow", "updated") == 1
    assert [f.path for f in mlflow.list_artifacts(run.info.run_id)] == ["tiny-letters", "tiny-letters-gen"]


def test_the_command_prints_what_it_did_and_a_dry_run_sends_nothing(bundles, config, mlflow, cli):
    args = ("export", *bundles, "--dest", "mlflow", "--config", json.dumps(config))
    plan = json.loads(cli(*args, "--dry-run").out)
    assert [p["would"] for p in plan] == ["created", "created"]
    assert mlflow.get_experiment_by_name(config["experiment_name"]) is None  # nothing created
    first = cli(*args)
    assert first.code == 0, first.err
    experiment = mlflow.get_experiment_by_name(config["experiment_name"]).experiment_id
    where = f"{config['tracking_uri']}/#/experiments/{experiment}/runs/"
    assert f"mlflow: 2 created, 0 updated, 0 unchanged ({where}" in first.out
    assert "mlflow: 0 created, 0 updated, 2 unchanged" in cli(*args).out
    again = json.loads(cli(*args, "--dry-run").out)
    assert [p["would"] for p in again] == ["unchanged", "unchanged"]
    assert len(_runs(mlflow, config)) == 2


def test_the_tracking_uri_comes_from_the_environment_when_not_configured(
    bundles, config, mlflow, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config["tracking_uri"])
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", config["experiment_name"])
    assert export_results(bundles[0], dest="mlflow").count("mlflow", "created") == 1
    assert len(_runs(mlflow, config)) == 1


def test_no_tracking_uri_is_refused_saying_what_to_set(bundles, cli):
    result = cli("export", *bundles, "--dest", "mlflow")
    assert result.code == 2
    assert "set tracking_uri in --config" in result.err
    assert "MLFLOW_TRACKING_URI" in result.err
    assert _ledger(bundles[0]) == []


@pytest.mark.parametrize(
    ("where", "value", "says"),
    [
        ("config", "127.0.0.1:5055", "tracking_uri '127.0.0.1:5055' has no scheme"),
        ("config", "localhost:5000", "write http://localhost:5000 (https:// for TLS)"),
        ("env", "mlflow.example:5000", "MLFLOW_TRACKING_URI 'mlflow.example:5000' has no scheme"),
        ("env", "127.0.0.1:5055", "write http://127.0.0.1:5055"),
        ("config", "mlruns", "for a local database write sqlite:///<path>.db"),
        ("config", "ftp://h/x", "has a scheme MLflow does not serve (ftp:)"),
        ("config", "http://", "is not a tracking server's address; write http://host:port"),
        ("config", "file:///tmp/mlruns", "MLflow refuses unless MLFLOW_ALLOW_FILE_STORE=true"),
    ],
)
def test_a_tracking_uri_mlflow_would_misread_is_refused_saying_what_to_write(
    bundles, cli, monkeypatch, where, value, says
):
    tmp_path = bundles[0].parent.parent
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    keys = {"tracking_uri": value} if where == "config" else {}
    if where == "env":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
    result = cli("export", *bundles, "--dest", "mlflow", "--config", json.dumps(keys))
    assert result.code == 2
    assert says in result.err
    assert "maintenance mode" not in result.err
    assert _ledger(bundles[0]) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]  # no store folder or file made


def test_a_sqlite_store_is_not_created_by_a_dry_run_and_is_used_by_an_export(
    bundles, cli, monkeypatch, tmp_path
):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts a database store's artifacts under ./mlruns
    db = tmp_path / "stores" / "x.db"
    db.parent.mkdir()
    keys = json.dumps({"tracking_uri": f"sqlite:///{db}", "experiment_name": "e"})
    result = cli("export", *bundles, "--dest", "mlflow", "--config", keys, "--dry-run")
    assert result.code == 0, result.err
    assert [p["would"] for p in json.loads(result.out)] == ["created", "created"]
    assert not db.exists()
    assert cli("export", *bundles, "--dest", "mlflow", "--config", keys).code == 0
    store = MlflowClient(f"sqlite:///{db}")
    (experiment,) = [e for e in store.search_experiments() if e.name == "e"]
    runs = store.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["task"] for run in runs) == ["tiny-letters", "tiny-letters-gen"]
    result = cli("export", *bundles, "--dest", "mlflow", "--config", keys, "--dry-run")
    assert result.code == 0, result.err
    assert [p["would"] for p in json.loads(result.out)] == ["unchanged", "unchanged"]


def test_a_sqlite_store_in_a_missing_folder_is_refused_before_anything_is_sent(bundles, cli, tmp_path):
    db = tmp_path / "nowhere" / "x.db"
    result = cli(
        "export", *bundles, "--dest", "mlflow", "--config", json.dumps({"tracking_uri": f"sqlite:///{db}"})
    )
    assert result.code == 2
    assert f"({db.parent}) does not exist; create it" in result.err
    assert not db.parent.exists()


def test_a_closed_port_is_refused_before_anything_is_sent(bundles, cli):
    uri = f"http://127.0.0.1:{free_port()}"
    result = cli("export", *bundles, "--dest", "mlflow", "--config", json.dumps({"tracking_uri": uri}))
    assert result.code == 2
    assert f"cannot reach the MLflow tracking server at {uri} (connection refused)" in result.err
    assert "check network access and tracking_uri (or MLFLOW_TRACKING_URI)" in result.err
    assert _ledger(bundles[0]) == []


def _failing(status: int | None, released: threading.Event | None = None, body: Any = None):
    """A server that answers every request with ``status`` and ``body`` (JSON; text when a
    string), or (``status`` None) not before ``released``."""

    def handler_for(url: str) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                if status is None:
                    assert released is not None
                    released.wait(60)
                    return
                if not isinstance(body, str):
                    answer_json(self, status, body)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    return handler_for


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (500, {"detail": "boom"}, "the MLflow tracking server at {uri} is failing (HTTP 500): retry later"),
        (
            403,
            {"error_code": "PERMISSION_DENIED", "message": "Permission denied"},
            "at {uri} refused the credentials (PERMISSION_DENIED, HTTP 403): check MLFLOW_TRACKING_USERNAME",
        ),
        (
            401,
            "You are not authenticated.",
            "refused the credentials (HTTP 401): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        ),
        (
            404,
            "Not Found",
            "{uri} does not answer as an MLflow tracking server (HTTP 404); check tracking_uri",
        ),
        (403, {"detail": "no"}, "the MLflow tracking server at {uri} refused it (INTERNAL_ERROR: Response:"),
    ],
)
def test_a_server_answering_an_error_is_said_with_what_to_do(bundles, cli, status, body, says):
    with loopback_server(_failing(status, body=body)) as httpd:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = cli("export", *bundles, "--dest", "mlflow", "--config", json.dumps({"tracking_uri": uri}))
    assert result.code == 2
    assert says.format(uri=uri) in result.err
    assert _ledger(bundles[0]) == []


def test_a_server_that_never_answers_is_said_within_the_bound(bundles, cli, monkeypatch):
    monkeypatch.setattr(mlflow_conn, "PREFLIGHT", mlflow_conn.Bounds(retries=0, timeout_s=1))
    released = threading.Event()
    with loopback_server(_failing(None, released)) as httpd:
        uri = f"http://127.0.0.1:{httpd.server_address[1]}"
        try:
            result = cli(
                "export", *bundles, "--dest", "mlflow", "--config", json.dumps({"tracking_uri": uri})
            )
        finally:
            released.set()
    assert result.code == 2
    assert f"the MLflow tracking server at {uri} did not answer in time" in result.err


def _fails_after_lookup(url: str) -> type[BaseHTTPRequestHandler]:
    """Finds the experiment (preflight passes), then answers 503 to everything else."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "experiments/get-by-name" in self.path:
                experiment = {"experiment_id": "1", "name": "e", "lifecycle_stage": "active"}
                answer_json(self, 200, {"experiment": experiment})
            else:
                answer_json(self, 503, {"detail": "down"})

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_a_failure_while_sending_exits_7_with_the_retry_and_no_secret(bundles, cli, monkeypatch):
    monkeypatch.setattr(mlflow_conn, "PUBLISH", mlflow_conn.Bounds(retries=0, timeout_s=5))
    password = "pw-" + "q" * 20
    with loopback_server(_fails_after_lookup) as httpd:
        uri = f"http://alice:{password}@127.0.0.1:{httpd.server_address[1]}"
        config = {"tracking_uri": uri, "experiment_name": "e"}
        result = cli("export", bundles[0], "--dest", "mlflow", "--config", json.dumps(config))
    assert result.code == 7
    shown = f"http://alice:***@127.0.0.1:{httpd.server_address[1]}"
    assert f"the MLflow tracking server at {shown} is failing (HTTP 503)" in result.err
    assert "finish the export with: eval_framework export" in result.err
    assert "(with mlflow.tracking_uri added to --config: secrets are not printed)" in result.err
    assert password not in result.err + result.out
    (entry,) = _ledger(bundles[0])
    assert entry["status"] == "failed"
    assert password not in (bundles[0] / "exports.jsonl").read_text()


def test_no_secret_reaches_the_output_the_ledger_or_the_run(
    bundles, config, mlflow, cli, monkeypatch, tmp_path
):
    in_uri, in_env, in_keys = "uri-" + "u" * 20, "env-" + "e" * 20, "sk-" + "k" * 24
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", in_env)
    uri = config["tracking_uri"].replace("http://", f"http://alice:{in_uri}@")
    keys = {
        **config,
        "tracking_uri": uri,
        "extra_metadata": {"api_key": in_keys},
        "description": f"token={in_keys}",
    }
    result = cli("export", *bundles, "--dest", "mlflow", "--config", json.dumps(keys))
    assert result.code == 0, result.err
    text = result.out + result.err
    for bundle in bundles:
        text += (bundle / "exports.jsonl").read_text()
    for run in _runs(mlflow, config):
        text += json.dumps([run.data.params, run.data.tags, list(run.data.metrics)])
        got = Path(mlflow.download_artifacts(run.info.run_id, "bundle", str(tmp_path / run.info.run_id)))
        text += "".join(p.read_text() for p in got.iterdir())
        assert run.data.tags["api_key"] == "***"
    for secret in (in_uri, in_env, in_keys):
        assert secret not in text
    assert "127.0.0.1" in text  # the location is there, without the credentials


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"tags": {"mlflow.user": "x"}}, "keys starting with eval_framework. or mlflow. are reserved"),
        ({"extra_metadata": {"a,b": 1}}, "MLflow takes letters, digits"),
        ({"log_mode": "both"}, "mlflow export: invalid config"),
        ({"tracking_uir": "x"}, "unknown config key 'tracking_uir' (did you mean tracking_uri?)"),
    ],
)
def test_a_wrong_key_is_refused_before_anything_is_sent(bundles, config, keys, says):
    with pytest.raises(ConfigError) as info:
        export_results(bundles, dest="mlflow", config={**config, **keys})
    assert says in str(info.value)
    assert _ledger(bundles[0]) == []


def test_a_deleted_experiment_is_refused_with_how_to_restore_it(bundles, config, mlflow):
    mlflow.delete_experiment(mlflow.create_experiment(config["experiment_name"]))
    with pytest.raises(ConfigError, match="is deleted; restore it"):
        export_results(bundles, dest="mlflow", config=config)


def test_without_the_extra_it_says_what_to_install(bundles, config, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'eval_framework\[mlflow\]'"):
        export_results(bundles, dest="mlflow", config=config)


def test_importing_the_package_and_the_destination_imports_no_mlflow():
    code = "import sys, eval_framework, eval_framework.sinks.mlflow_export; print('mlflow' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
