"""The local destination and the export command: summaries read back from the files written."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eval_framework import export_results
from eval_framework.errors import ConfigError, OutputError
from eval_framework.sinks import registry
from tests.conftest import USER_MODELS
from tests.plugins import installed_plugin

EVAL = ("--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", "tiny-letters")


@pytest.fixture
def bundles(cli, tmp_path) -> list[Path]:
    """Two finished evaluations of one model: 6 and 9 samples."""
    out = tmp_path / "out"
    for n in ("6", "9"):
        assert cli(*EVAL, "--num-samples", n, "--output-dir", out).code == 0
    return sorted(p for p in out.iterdir() if p.is_dir())


def _table(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        return list(csv.DictReader(path.open(encoding="utf-8")))
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


def test_export_writes_a_row_per_evaluation_and_a_summary_per_bundle(bundles, tmp_path):
    out = tmp_path / "exports"
    summary = export_results(bundles, dest="local", config={"output_dir": str(out)})
    assert summary.count("local", "created") == 2
    rows = _table(out / "summary.json")
    assert sorted(r["num_samples"] for r in rows) == [6, 9]
    for row, bundle in zip(sorted(rows, key=lambda r: r["num_samples"]), bundles, strict=True):
        results = json.loads((bundle / "results.json").read_text())["metrics"]["overall"]
        assert row["acc"] == results["acc"]["value"]
        assert row["acc_stderr"] == results["acc"]["stderr"]
        assert row["acc_n"] == results["acc"]["n"]
        assert row["evaluation_hash"] == json.loads((bundle / "metadata.json").read_text())["natural_key"]
        own = json.loads((out / "bundles" / f"{bundle.name}.json").read_text())
        assert own["acc_norm"] == results["acc_norm"]["value"]
        assert set(own["subjects"]) == {"copy", "reverse"}
    ledger = [json.loads(line) for line in (bundles[0] / "exports.jsonl").read_text().splitlines()]
    assert ledger[-1]["destination"] == "local"
    assert ledger[-1]["status"] == "created"


def test_exporting_again_changes_nothing_and_force_rewrites(bundles, tmp_path):
    config = {"output_dir": str(tmp_path / "exports"), "format": "csv"}
    export_results(bundles, dest="local", config=config)
    table = tmp_path / "exports" / "summary.csv"
    first = table.read_bytes()
    again = export_results(bundles, dest="local", config=config)
    assert again.count("local", "unchanged") == 2
    assert table.read_bytes() == first
    forced = export_results(bundles[:1], dest="local", config=config, force=True)
    assert forced.count("local", "updated") == 1
    rows = _table(table)
    assert len(rows) == 2  # upserted by the evaluation hash, never duplicated
    assert table.read_bytes() == first


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_status_follows_the_table_row_when_a_table_is_copied_to_a_new_folder(bundles, tmp_path, cli, fmt):
    first, fresh = tmp_path / "exports", tmp_path / "fresh"
    export_results(bundles, dest="local", config={"output_dir": str(first), "format": fmt})
    fresh.mkdir()
    table = fresh / f"summary.{fmt}"
    table.write_bytes((first / f"summary.{fmt}").read_bytes())  # already holds exactly these rows
    config = json.dumps({"output_dir": str(fresh), "format": fmt})
    preview = cli("export", *bundles, "--dest", "local", "--config", config, "--dry-run")
    assert preview.code == 0, preview.err
    assert [p["would"] for p in json.loads(preview.out)] == ["updated", "updated"]
    assert not (fresh / "bundles").exists()  # the dry run wrote nothing
    done = export_results(bundles, dest="local", config={"output_dir": str(fresh), "format": fmt})
    assert [e.status for e in done.exported] == ["updated", "updated"]  # only the bundle files were new
    assert table.read_bytes() == (first / f"summary.{fmt}").read_bytes()
    assert sorted(p.name for p in (fresh / "bundles").iterdir()) == sorted(f"{b.name}.{fmt}" for b in bundles)
    (fresh / "bundles" / f"{bundles[0].name}.{fmt}").unlink()
    redone = export_results(bundles, dest="local", config={"output_dir": str(fresh), "format": fmt})
    assert [e.status for e in redone.exported] == ["updated", "unchanged"]  # a missing file rewritten
    assert (fresh / "bundles" / f"{bundles[0].name}.{fmt}").is_file()
    again = cli("export", *bundles, "--dest", "local", "--config", config, "--dry-run")
    assert [p["would"] for p in json.loads(again.out)] == ["unchanged", "unchanged"]


def test_a_filtered_export_then_a_full_one_appends_the_new_metric_columns(bundles, tmp_path):
    config = {"output_dir": str(tmp_path / "e"), "format": "csv", "log_metrics": ["acc_norm"]}
    export_results(bundles[:1], dest="local", config=config)
    table = tmp_path / "e" / "summary.csv"
    header = table.read_text().splitlines()[0].split(",")
    assert "acc_norm" in header
    assert "acc" not in header  # substring match: acc_norm's stderr and n follow it, acc does not
    assert "acc_norm_stderr" in header
    export_results(bundles[1:], dest="local", config={**config, "log_metrics": []})
    new_header = table.read_text().splitlines()[0].split(",")
    assert new_header[: len(header)] == header  # existing columns stay where they were
    assert {"acc", "acc_stderr", "acc_n"} <= set(new_header[len(header) :])
    rows = _table(table)
    assert rows[0]["acc"] == ""  # the first export did not carry it
    assert rows[1]["acc"] != ""


def test_concurrent_exports_to_one_table_lose_no_row(cli, tmp_path):
    out = tmp_path / "out"
    for n in range(3, 9):
        assert cli(*EVAL, "--num-samples", str(n), "--output-dir", out).code == 0
    found = sorted(p for p in out.iterdir() if p.is_dir())
    script = textwrap.dedent(
        """
        import sys
        from eval_framework import export_results
        export_results([sys.argv[1]], dest="local", config={"output_dir": sys.argv[2]})
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(b), str(tmp_path / "shared")]) for b in found
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(found)
    rows = _table(tmp_path / "shared" / "summary.json")
    assert sorted(r["num_samples"] for r in rows) == list(range(3, 9))


def test_a_file_that_is_not_our_table_is_refused_and_left_as_it_is(bundles, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "summary.json").write_text('{"my": "notes"}')
    with pytest.raises(OutputError, match="it is not a summary table written by eval_framework"):
        export_results(bundles, dest="local", config={"output_dir": str(out)})
    assert (out / "summary.json").read_text() == '{"my": "notes"}'
    assert not (out / "bundles").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("dest", "config", "says"),
    [
        ("locl", {}, "unknown export destination 'locl' (did you mean local?); use one of: local, hf, wandb"),
        ("local", {"fromat": "csv"}, "unknown config key 'fromat' (did you mean format?)"),
        ("local", {"format": "xlsx"}, "local export: invalid config"),
    ],
)
def test_a_wrong_destination_or_key_is_refused_before_anything_is_written(
    bundles, tmp_path, dest, config, says
):
    with pytest.raises(ConfigError) as info:
        export_results(bundles, dest=dest, config={"output_dir": str(tmp_path / "e"), **config})
    assert says in str(info.value)
    assert not (tmp_path / "e").exists()
    assert not (bundles[0] / "exports.jsonl").exists()


def test_an_unfinished_bundle_is_reported_and_the_others_exported(bundles, tmp_path):
    (bundles[0] / "results.json").unlink()
    with pytest.raises(OutputError, match="1 of 2 bundle"):
        export_results(bundles, dest="local", config={"output_dir": str(tmp_path / "e")})
    rows = _table(tmp_path / "e" / "summary.json")
    assert [r["bundle"] for r in rows] == [str(bundles[1].resolve())]


PLUGIN = """
from typing import ClassVar
from pydantic import BaseModel, ConfigDict
from eval_framework.sinks.base import Exported


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail: bool = False
    broken: str = ""  # "preflight" or "publish": a plugin's own bug
    api_key: str = ""


class Dashboard:
    name: ClassVar[str] = "dashboard"
    Config: ClassVar[type[BaseModel]] = Config
    seen: ClassVar[list] = []

    def __init__(self, config):
        self.config = config

    def preflight(self):
        if self.config.broken == "preflight":
            raise KeyError("endpoint")

    def publish(self, bundle, force=False):
        if self.config.fail:
            raise RuntimeError("dashboard is down")
        if self.config.broken == "publish":
            return None
        Dashboard.seen.append(bundle.metadata().natural_key)
        return Exported("dashboard", bundle.dir, "created", "dash://" + bundle.dir.name)
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A tiny installed plugin."""
    with installed_plugin(tmp_path, monkeypatch, "dash_sink", PLUGIN, "dashboard = dash_sink:Dashboard"):
        yield


def test_a_plugin_registered_by_entry_point_is_a_destination(plugin, bundles, tmp_path):
    assert registry.available() == ["local", "hf", "wandb", "mlflow", "gsheets", "dashboard"]
    summary = export_results(
        bundles, dest=["local", "dashboard"], config={"local": {"output_dir": str(tmp_path / "e")}}
    )
    assert summary.count("dashboard", "created") == 2
    assert summary.count("local", "created") == 2
    import dash_sink

    assert len(dash_sink.Dashboard.seen) == 2


def test_a_failing_destination_stops_no_other_and_names_the_retry(plugin, bundles, tmp_path, cli):
    config = {"local": {"output_dir": str(tmp_path / "e")}, "dashboard": {"fail": True}}
    result = cli("export", *bundles, "--dest", "local", "--dest", "dashboard", "--config", json.dumps(config))
    assert result.code == 7, result.err
    assert "dashboard export of" in result.err
    assert "dashboard is down" in result.err
    assert "--dest dashboard" in result.err
    assert "--dest local" not in result.err  # the retry is for the failed destination only
    assert "local: 2 created, 0 updated, 0 unchanged" in result.out
    assert "dashboard: 0 created, 0 updated, 0 unchanged, 2 failed" in result.out
    assert len(_table(tmp_path / "e" / "summary.json")) == 2
    ledger = [json.loads(line) for line in (bundles[0] / "exports.jsonl").read_text().splitlines()]
    assert {(e["destination"], e["status"]) for e in ledger} == {
        ("local", "created"),
        ("dashboard", "failed"),
    }


def test_the_command_prints_what_it_did_per_destination(bundles, tmp_path, cli):
    args = ("export", *bundles, "--dest", "local", "--format", "csv",
            "--config", json.dumps({"output_dir": str(tmp_path / "e")}))  # fmt: skip
    first = cli(*args)
    assert first.code == 0, first.err
    assert "local: 2 created, 0 updated, 0 unchanged" in first.out
    again = cli(*args)
    assert "local: 0 created, 0 updated, 2 unchanged" in again.out
    wrong = cli("export", *bundles, "--dest", "local", "--config", "{not json")
    assert wrong.code == 2
    assert "--config is not valid JSON" in wrong.err


def test_a_dry_run_says_what_each_export_would_do_and_writes_nothing(bundles, tmp_path, cli):
    out = tmp_path / "e"
    args = ("export", *bundles, "--dest", "local", "--config", json.dumps({"output_dir": str(out)}))
    first = json.loads(cli(*args, "--dry-run").out)
    assert [p["would"] for p in first] == ["created", "created"]
    assert not out.exists()
    assert not (bundles[0] / "exports.jsonl").exists()
    assert cli(*args).code == 0
    again = json.loads(cli(*args, "--dry-run").out)
    assert [p["would"] for p in again] == ["unchanged", "unchanged"]
    forced = json.loads(cli(*args, "--dry-run", "--force").out)
    assert [p["would"] for p in forced] == ["updated", "updated"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_folder_that_cannot_be_written_is_refused_before_anything_is_sent(bundles, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="cannot write under"):
            export_results(bundles, dest="local", config={"output_dir": str(locked / "e")})
    finally:
        locked.chmod(0o755)
    assert not (bundles[0] / "exports.jsonl").exists()


def test_an_output_dir_under_a_file_is_refused_before_anything_is_sent(bundles, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file where the output_dir"):
        export_results(bundles, dest="local", config={"output_dir": str(tmp_path / "file" / "e")})
    assert not (bundles[0] / "exports.jsonl").exists()


def test_a_quoted_glob_selects_the_bundles_it_matches(bundles, tmp_path, cli):
    pattern = str(bundles[0].parent / "*__6__*")  # as a shell leaves it when quoted
    plan = json.loads(cli("export", pattern, "--dest", "local", "--dry-run").out)
    assert [p["bundle"] for p in plan] == [str(bundles[0].resolve())]
    nothing = cli("export", str(bundles[0].parent / "*__99__*"), "--dest", "local")
    assert nothing.code == 2
    assert "matches nothing" in nothing.err


def test_a_plugins_own_bugs_are_named_as_its_own_and_isolated(plugin, bundles, tmp_path, cli):
    local = {"output_dir": str(tmp_path / "e")}
    early = cli("export", *bundles, "--dest", "local", "--dest", "dashboard",
                "--config", json.dumps({"local": local, "dashboard": {"broken": "preflight"}}))  # fmt: skip
    assert early.code == 2
    assert "export destination 'dashboard' failed its check before exporting: KeyError" in early.err
    assert not (tmp_path / "e").exists()  # nothing was sent anywhere
    late = cli("export", *bundles, "--dest", "local", "--dest", "dashboard",
               "--config", json.dumps({"local": local, "dashboard": {"broken": "publish"}}))  # fmt: skip
    assert late.code == 7
    assert "local: 2 created" in late.out  # what was done is said before the error
    assert "dashboard.publish() returned NoneType, not an Exported" in late.err
    assert late.err.count("returned NoneType") == 1  # one line per cause, not one per bundle
    assert "bug in eval_framework" not in late.err


def test_the_retry_command_holds_no_secret_and_keeps_force(plugin, bundles, cli):
    secret = "sk-" + "x" * 24
    config = {"fail": True, "api_key": secret}
    result = cli("export", *bundles, "--dest", "dashboard", "--force", "--config", json.dumps(config))
    assert result.code == 7
    assert secret not in result.err
    assert "***" not in result.err
    assert "--force" in result.err
    assert "(with dashboard.api_key added to --config: secrets are not printed)" in result.err


def test_a_spreadsheets_csv_keeps_its_own_columns_and_a_filtered_export_loses_no_metric(bundles, tmp_path):
    out = tmp_path / "e"
    export_results(bundles[0], dest="local", config={"output_dir": str(out), "format": "csv"})
    table = out / "summary.csv"
    rows = _table(table)
    rows[0]["notes"] = "baseline"
    text = ",".join([*rows[0]]) + "\r\n" + ",".join(rows[0].values()) + "\r\n"
    table.write_bytes(b"\xef\xbb\xbf" + text.encode())  # saved as "CSV UTF-8" by a spreadsheet
    for fmt in ("csv", "json"):
        config = {"output_dir": str(out), "format": fmt}
        export_results(bundles[0], dest="local", config=config)
        export_results(bundles[0], dest="local", config={**config, "log_metrics": ["acc_norm"]}, force=True)
    (row,) = _table(table)
    assert row["notes"] == "baseline"
    assert row["checkpoint"] == "HashLLM"
    assert row["acc"] != ""  # a filtered export replaces what it writes, never what it leaves out
    assert table.read_text().splitlines()[0].startswith("checkpoint,")
    (json_row,) = _table(out / "summary.json")
    assert json_row["acc"] == float(row["acc"])


def test_a_metric_filter_that_matches_nothing_is_refused(bundles, tmp_path, plugin, cli):
    with pytest.raises(ConfigError, match="log_metrics 'ACC' matches no metric of these bundles"):
        export_results(
            bundles, dest="local", config={"output_dir": str(tmp_path / "e"), "log_metrics": ["ACC"]}
        )
    assert not (tmp_path / "e").exists()
    result = cli("export", *bundles, "--dest", "dashboard", "--log-metrics", "acc")
    assert result.code == 2
    assert "--log-metrics does not apply to dashboard" in result.err


def _auto_config(tmp_path: Path, block: str) -> Path:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"models: {USER_MODELS}\nllm_name: HashLLM\ntask_name: tiny-letters\nnum_samples: 5\n"
        f"output_dir: {tmp_path / 'out'}\n{block}"
    )
    return config


def test_auto_export_sends_each_finished_evaluation(cli, tmp_path):
    block = (
        f"auto_export:\n  destinations: [local]\n  configs:\n    local: {{output_dir: {tmp_path / 'e'}}}\n"
    )
    result = cli("--config", _auto_config(tmp_path, block))
    assert result.code == 0, result.err
    assert "local: 1 created" in result.out
    (row,) = _table(tmp_path / "e" / "summary.json")
    assert row["num_samples"] == 5
    override = tmp_path / "export.yaml"
    override.write_text("configs:\n  local: {format: csv}\n")
    again = cli("--config", _auto_config(tmp_path, block), "--export-config", override)
    assert again.code == 0, again.err
    assert (tmp_path / "e" / "summary.csv").is_file()  # format from --export-config, folder from --config


@pytest.mark.parametrize(
    ("block", "says"),
    [
        (
            "auto_export:\n  destinations: [lokal]\n",
            "unknown export destination 'lokal' (did you mean local?)",
        ),
        (
            "auto_export:\n  destination: [local]\n",
            "unknown key 'destination'; it takes destinations and configs",
        ),
        ("auto_export: local\n", "must be a mapping"),
    ],
)
def test_a_wrong_auto_export_is_refused_before_the_model_loads(cli, tmp_path, block, says):
    result = cli("--config", _auto_config(tmp_path, block))
    assert result.code == 2
    assert says in result.err
    assert not (tmp_path / "out").exists()


def test_a_failing_auto_export_keeps_the_evaluation_and_names_the_retry(plugin, cli, tmp_path):
    block = "auto_export:\n  destinations: [dashboard]\n  configs:\n    dashboard: {fail: true}\n"
    result = cli("--config", _auto_config(tmp_path, block))
    assert result.code == 7
    assert "dashboard is down" in result.err
    assert "eval_framework export" in result.err
    assert "--dest dashboard" in result.err
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert json.loads((bundle / "metadata.json").read_text())["status"] == "complete"


def test_a_named_directory_that_is_not_a_bundle_is_reported_not_skipped(bundles, tmp_path, cli):
    stray = tmp_path / "notes"
    (stray / "sub").mkdir(parents=True)
    (stray / "sub" / "readme.txt").write_text("not an evaluation")
    out = tmp_path / "e"
    result = cli(
        "export", bundles[0], stray, "--dest", "local", "--config", json.dumps({"output_dir": str(out)})
    )
    assert result.code == 5
    assert f"skipping {stray}" in result.err
    assert "metadata.json does not exist" in result.err
    assert "1 of 2 bundle(s) are not finished evaluations" in result.err
    assert [r["bundle"] for r in _table(out / "summary.json")] == [str(bundles[0].resolve())]
