"""Sweeping a W&B registry collection end to end: the real wandb SDK lists the versions from the
fake W&B server over HTTP (paged), each version is resolved, downloaded and evaluated with the
shipped tiny-letters checkpoints, and the registry's failures are one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_framework.registry import wandb_client
from tests.registry.conftest import fake_wandb, s3, s3_server, wandb_http  # noqa: F401  (fixtures)
from tests.registry.test_resolver import _register_shipped

MODELS = Path(__file__).parent / "sweep_models.py"
LETTERS = ("--task-name", "tiny-letters", "--num-samples", "8", "--output-dir", "out")


@pytest.fixture
def three_versions(fake_wandb):  # noqa: F811  (the fixture imported above)
    """tiny v0, v1, v2: the shipped checkpoints, untrained to trained ('prod' on the newest)."""
    for shipped in ("v0", "v1", "v2"):
        _register_shipped(fake_wandb, "tiny", shipped)
    return fake_wandb


def _bundles(tmp_path: Path) -> dict[str, float]:
    """Finished bundles by the registry version they evaluated (acme-org/.../tiny:vN): accuracy."""
    found = {}
    for meta_path in (tmp_path / "out").glob("*/metadata.json"):
        meta = json.loads(meta_path.read_text())
        assert meta["status"] == "complete"
        results = json.loads((meta_path.parent / "results.json").read_text())
        version = meta["model"]["identity"]["artifact"]["qualified_name"].rpartition(":")[2]
        found[version] = results["metrics"]["overall"]["acc"]["value"]
    return found


def test_a_collection_is_swept_version_by_version(cli, three_versions, tmp_path, monkeypatch):
    monkeypatch.setattr(wandb_client, "VERSIONS_PER_PAGE", 2)  # three versions: two pages
    result = cli("sweep", "wandb-registry-model/tiny", *LETTERS)
    assert result.code == 0, result.err
    assert three_versions.server.operations.count("ProjectArtifacts") == 2  # the SDK paged through
    bundles = _bundles(tmp_path)
    assert sorted(bundles) == ["v0", "v1", "v2"]
    assert bundles["v2"] > bundles["v0"]  # the trained checkpoint beats the untrained one
    assert "v2 (prod)" in result.out  # aliases shown in the summary
    lines = [line for line in result.err.splitlines() if line.startswith("version ")]
    shown = [line.split(":")[0] for line in lines]
    assert shown == ["version 1/3 v0", "version 2/3 v1", "version 3/3 v2 (prod)"]
    assert "Sweep: 3 version(s) x 1 task(s): 3 evaluated" in result.out


def test_finished_versions_are_recognised_without_a_download(cli, three_versions, tmp_path):
    first = cli("sweep", "tiny", "--versions", "last:2", *LETTERS)
    assert first.code == 0, first.err
    assert sorted(_bundles(tmp_path)) == ["v1", "v2"]
    three_versions.server.per_operation["GetArtifactMembershipFileUrls"] = "500"  # no download could work
    again = cli("sweep", "tiny", "--versions", "since:v1", *LETTERS)
    assert again.code == 0, again.err
    assert "2 reused" in again.out


def test_the_model_loads_once_per_version_for_all_its_tasks(cli, three_versions, tmp_path, monkeypatch):
    monkeypatch.setenv("EF_SWEEP_LOG", str(tmp_path / "model.log"))
    result = cli("sweep", "tiny", "--versions", "v1..v2", "--models", MODELS, "--llm-name", "CountingLLM",
                 "--task-name", "tiny-letters-gen", *LETTERS)  # fmt: skip
    assert result.code == 0, result.err
    loads = [line for line in (tmp_path / "model.log").read_text().splitlines() if line.startswith("load")]
    assert len(loads) == 2, loads  # two versions, two tasks each, one load each
    assert "4 evaluated" in result.out


def test_a_collection_that_does_not_exist(cli, three_versions, tmp_path):
    result = cli("sweep", "nope", *LETTERS)
    assert result.code == 6, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "wandb-registry-model/nope:latest not found" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_an_alias_is_refused_before_any_evaluation(cli, three_versions, tmp_path):
    result = cli("sweep", "tiny:prod", *LETTERS)
    assert result.code == 2, result.err
    assert "sweep and watch take a collection, not one version: drop ':prod'" in result.err


def test_a_range_with_no_versions_says_which_there_are(cli, three_versions, tmp_path):
    result = cli("sweep", "tiny", "--versions", "v5..v9", *LETTERS)
    assert result.code == 2, result.err
    assert "--versions v5..v9 selects no version; there are 3 versions (v0 .. v2)" in result.err
    assert not (tmp_path / "out").exists()


def test_a_failing_listing_is_one_line(cli, three_versions, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS", "0.5")
    three_versions.server.per_operation["ProjectArtifacts"] = "500"
    result = cli("sweep", "tiny", *LETTERS)
    assert result.code == 6, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "W&B request for wandb-registry-model/tiny" in lines[0], lines[0]
    assert "HTTP 500" in lines[0] or "did not answer in time" in lines[0], lines[0]
    assert "API key" not in lines[0]


def test_a_hanging_listing_is_bounded(cli, three_versions, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "2")
    three_versions.server.per_operation["ProjectArtifacts"] = "hang"
    result = cli("sweep", "tiny", *LETTERS)
    assert result.code == 6, result.err
    assert "no answer within 2 s" in result.err, result.err
    assert "WANDB_HTTP_TIMEOUT" in result.err
    assert three_versions.server.operations.count("ProjectArtifacts") <= 2


def test_print_grid_of_registry_versions(cli, three_versions, tmp_path):
    import yaml

    from eval_framework.determined_hparams import load_hparams

    result = cli("sweep", "tiny", "--versions", "since:v1", "--print-grid", "--task-name", "ARC,MMLU",
                 "--num-fewshot", "5")  # fmt: skip
    assert result.code == 0, result.err
    hparams = yaml.safe_load(result.out)["hyperparameters"]
    vals = hparams["checkpoint"]["vals"]
    assert vals == ["wandb-registry-model/tiny:v1", "wandb-registry-model/tiny:v2"]
    trial = load_hparams({**hparams, "checkpoint": vals[0]})
    assert [(t.task_name, t.num_fewshot) for t in trial.task_args or []] == [("ARC", 5), ("MMLU", 5)]


def test_a_broken_version_fails_alone(cli, fake_wandb, tmp_path):  # noqa: F811  (the fixture)
    _register_shipped(fake_wandb, "tiny", "v0")
    files = _register_shipped(fake_wandb, "tiny", "v2")
    broken = [fake_wandb.stored_file(path, b"not weights" if path.endswith(".safetensors") else data)
              for path, data in files.items()]  # fmt: skip
    fake_wandb.add_version("wandb-registry-model", "tiny", broken)  # v2: its weights are garbage
    result = cli("sweep", "tiny", *LETTERS)
    assert result.code == 3, result.err  # the model's exit code
    assert sorted(_bundles(tmp_path)) == ["v0", "v1"]
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("error: v2 failed: loading model HuggingFaceLLM failed"), last
    assert "the 2 other version(s) are complete" in last
