"""``compare --wandb-project``: the real SDK offline, its transaction log read back."""

from __future__ import annotations

import json

import pytest

from eval_framework.sinks import wandb_mode
from tests.compare.bundles import restamp
from tests.registry.conftest import fake_wandb, s3, s3_server  # noqa: F401  (fixtures, by request)
from tests.wandb_log_reader import read_run, run_files

REGISTRY = "acme/wandb-registry-model/llama-sft"


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setattr(wandb_mode, "said", set())


def test_the_comparison_is_logged_into_the_collections_group(cli, evaluated, tmp_path):
    out = tmp_path / "evals"
    for number, name in ((3, "v0"), (4, "v1"), (5, "v2")):
        restamp(evaluated[name], out / name, qualified_name=f"{REGISTRY}:v{number}")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = cli("compare", "llama-sft", "--output-dir", out, "--wandb-project", "evals", "--format", "json")
    assert result.code == 0, result.err
    assert "no W&B API key found" in result.err
    assert "W&B: logged offline; upload with: wandb sync " in result.err
    data = json.loads(result.out)
    (log_file,) = run_files(out / "comparisons" / "wandb")
    log = read_run(log_file)
    assert log.run.run_group == "llama-sft"
    assert log.run.job_type == "compare"
    assert log.run.project == "evals"
    assert log.run.display_name == "compare llama-sft v3..v5"
    assert log.config["versions"] == ["v3", "v4", "v5"]
    assert log.config["baseline"] is None
    assert log.config["confidence"] == 0.95
    assert log.summary["comparison/_type"] == "table-file"
    assert log.summary["comparison/nrows"] == 6  # 3 versions x (acc, acc_norm)
    assert log.summary["comparison/ncols"] == 14
    for metric in ("acc", "acc_norm"):  # a line chart per metric, over its own table of versions
        assert log.summary[f"tiny-letters/{metric}/across_versions_table/nrows"] == 3
        chart = _visualized(log_file)[f"tiny-letters/{metric}/across_versions"]
        assert chart["panel_config"]["fieldSettings"] == {"x": "version_index", "y": "mean", "stroke": None}
    assert log.exit_code == 0
    # the table's rows are what the JSON says
    staged = next((out / "comparisons" / "wandb").rglob("comparison_*.table.json"))
    table = json.loads(staged.read_text())
    columns = table["columns"]
    rows = [dict(zip(columns, r, strict=True)) for r in table["data"]]
    v4 = next(r for r in rows if (r["version"], r["metric"]) == ("v4", "acc"))
    expected = next(c for c in data["comparisons"] if (c["version"], c["metric"]) == ("v4", "acc"))
    assert v4["baseline"] == "v3"
    assert v4["p_value"] == pytest.approx(expected["p_value"])
    assert v4["difference"] == pytest.approx(expected["difference"])
    assert v4["n_shared"] == expected["n_shared"]
    # bundles are never written to
    assert {
        p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "comparisons" not in p.parts
    } == before


def _visualized(log_file) -> dict:
    """The custom charts a run declares (``config._wandb.visualize``, which read_run leaves out)."""
    from tests.wandb_log_reader import read_records

    charts = {}
    for record in read_records(log_file):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                key = "/".join(item.nested_key)
                if key.startswith("_wandb/visualize/"):
                    charts[key.removeprefix("_wandb/visualize/")] = json.loads(item.value_json)
    return charts


def test_the_same_comparison_updates_the_same_run(cli, copy_bundles):
    out = copy_bundles("v0", "v1")
    assert cli("compare", out, "--output-dir", out, "--wandb-project", "evals").code == 0
    assert cli("compare", out, "--output-dir", out, "--wandb-project", "evals").code == 0
    third = cli("compare", out, "--output-dir", out, "--wandb-project", "evals", "--baseline", "v1")
    assert third.code == 0, third.err
    runs = [read_run(p).run for p in run_files(out / "comparisons" / "wandb")]
    assert len(runs) == 3
    assert runs[0].run_id == runs[1].run_id != runs[2].run_id
    assert runs[0].run_group == "compare"  # local checkpoints: no collection


def test_wandb_flags_are_checked_before_any_work(cli, copy_bundles):
    out = copy_bundles("v0", "v1")
    bad = cli("compare", out, "--wandb-project", "evals", "--wandb-mode", "sometimes")
    assert bad.code == 2
    assert "'sometimes' is not a mode" in bad.err
    assert bad.out == ""
    alone = cli("compare", out, "--wandb-entity", "acme")
    assert alone.code == 2
    assert "--wandb-entity and --wandb-mode need --wandb-project" in alone.err


def test_online_the_comparison_reaches_the_server_in_the_collections_group(cli, evaluated, tmp_path, request):
    """The real SDK online against the fake W&B server: the run, its group, the table (a run file)
    and the summary as the W&B UI would read them."""
    fake = request.getfixturevalue("fake_wandb")  # sets WANDB_BASE_URL and a valid key
    out = tmp_path / "evals"
    for number, name in ((3, "v0"), (4, "v1")):
        restamp(evaluated[name], out / name, qualified_name=f"{REGISTRY}:v{number}")
    result = cli(
        "compare", "llama-sft", "--output-dir", out, "--wandb-project", "evals", "--wandb-mode", "online"
    )
    assert result.code == 0, result.err
    (run,) = fake.runs.values()
    assert run.project == "evals"
    assert run.group == "llama-sft"
    assert run.job_type == "compare"
    assert run.exit_code == 0
    assert run.config["versions"] == ["v3", "v4"]
    assert run.summary["comparison"]["nrows"] == 4  # 2 versions x (acc, acc_norm)
    assert any(name.startswith("media/table/comparison") for name in run.files), list(run.files)
    assert "W&B: " in result.err
    assert "logged offline" not in result.err
