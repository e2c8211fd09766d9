"""Uploading bundles to a Hugging Face dataset repo, against a faithful fake ``HfApi``."""

from __future__ import annotations

import json

import pytest

from eval_framework.errors import ConfigError, HfUploadError
from eval_framework.sinks.hf_hub import HfUploadOptions, upload_bundle
from tests.fakes.hf_hub import VALID_TOKEN
from tests.sinks.conftest import EVAL
from tests.wandb_log_reader import read_run, run_files


def test_one_commit_per_bundle_and_the_url_is_recorded(hub, bundle):
    url = upload_bundle(bundle, HfUploadOptions("my-org/evals", "nightly"))
    repo = hub.repos["my-org/evals"]
    assert len(repo.commits) == 1
    assert url == f"https://huggingface.co/datasets/my-org/evals/tree/{repo.commits[0]}/nightly/{bundle.name}"
    names = ("metadata.json", "results.json", "samples.jsonl", "eval.log")
    assert sorted(repo.files) == sorted(f"nightly/{bundle.name}/{n}" for n in names)
    assert repo.files[f"nightly/{bundle.name}/results.json"] == (bundle / "results.json").read_bytes()
    assert json.loads((bundle / "metadata.json").read_text())["links"]["hf_upload_url"] == url
    assert upload_bundle(bundle, HfUploadOptions("my-org/evals", "nightly")) == url
    assert len(repo.commits) == 1  # the same results are not committed twice


def test_the_wandb_run_links_to_the_upload(cli, hub, tmp_path):
    result = cli(*EVAL, "--output-dir", tmp_path / "out", "--hf-upload-repo", "my-org/evals",
                 "--wandb-project", "evals", "--wandb-mode", "offline")  # fmt: skip
    assert result.code == 0, result.err
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    url = json.loads((bundle / "metadata.json").read_text())["links"]["hf_upload_url"]
    assert url.startswith("https://huggingface.co/datasets/my-org/evals/tree/")
    assert url in result.out
    (path,) = run_files(bundle / "wandb")
    log = read_run(path)
    assert log.config["hf_upload_url"] == url
    assert log.run.notes == f"Full results: {url}"


def test_bad_token_and_forbidden_namespace_are_explained(hub, bundle, monkeypatch, cli):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    with pytest.raises(HfUploadError, match=r"HTTP 401.*check HF_TOKEN") as info:
        upload_bundle(bundle, HfUploadOptions("my-org/evals"))
    assert "hf_" + "x" * 34 not in str(info.value)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    with pytest.raises(HfUploadError, match=r"HTTP 403.*write access"):
        upload_bundle(bundle, HfUploadOptions("someone-else/evals"))
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ConfigError, match="set HF_TOKEN"):
        upload_bundle(bundle, HfUploadOptions("my-org/evals"))
    assert not hub.repos.get("my-org/evals")
    result = cli("upload", bundle, "--hf-upload-repo", "someone-else/evals")
    assert result.code == 2
    assert "HF_TOKEN" in result.err
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    result = cli("upload", bundle, "--hf-upload-repo", "someone-else/evals")
    assert result.code == 7
    assert "HTTP 403" in result.err
    assert f"eval_framework upload {bundle} --hf-upload-repo someone-else/evals" in result.err


def test_the_hf_destination_commits_once_and_says_so(hub, bundle, cli):
    from eval_framework import export_results

    config = {"repo": "my-org/evals", "directory": "nightly"}
    summary = export_results(bundle, dest="hf", config=config)
    (done,) = summary.exported
    assert done.status == "created"
    repo = hub.repos["my-org/evals"]
    assert done.location.endswith(f"/tree/{repo.commits[0]}/nightly/{bundle.name}")
    again = cli(
        "export", bundle, "--dest", "hf", "--config", '{"repo": "my-org/evals", "directory": "nightly"}'
    )
    assert again.code == 0, again.err
    assert "hf: 0 created, 0 updated, 1 unchanged" in again.out
    assert len(repo.commits) == 1
    forced = export_results(
        bundle, dest="hf", config={"repo": "my-org/evals", "directory": "nightly"}, force=True
    )
    assert forced.exported[0].status == "updated"
    assert len(repo.commits) == 2


def test_the_hf_destination_is_checked_before_anything_is_sent(hub, bundle, tmp_path, monkeypatch):
    from eval_framework import export_results

    with pytest.raises(ConfigError, match="hf export: invalid config"):
        export_results(bundle, dest="hf", config={"repo": "not a repo"})
    monkeypatch.delenv("HF_TOKEN")
    both = {"local": {"output_dir": str(tmp_path / "e")}, "hf": {"repo": "my-org/evals"}}
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        export_results(bundle, dest=["local", "hf"], config=both)
    assert not (tmp_path / "e").exists()
    assert not hub.repos.get("my-org/evals")


def test_the_hf_destination_speaks_of_itself_not_of_the_upload_flag(hub, bundle, cli, monkeypatch):
    from huggingface_hub import constants

    config = ("--config", '{"repo": "my-org/evals"}')
    monkeypatch.delenv("HF_TOKEN")
    result = cli("export", bundle, "--dest", "hf", *config)
    assert result.code == 2
    assert "the hf export destination (--dest hf) needs a Hugging Face token" in result.err
    assert "--hf-upload-repo" not in result.err
    upload = cli("upload", bundle, "--hf-upload-repo", "my-org/evals")
    assert "--hf-upload-repo needs a Hugging Face token" in upload.err  # the flag's own words stay
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 sets it at import
    result = cli("export", bundle, "--dest", "hf", *config)
    assert result.code == 2
    assert (
        "the hf export destination (--dest hf) needs the Hugging Face Hub but HF_HUB_OFFLINE is set"
        in result.err
    )
    assert "run 'eval_framework export <bundles> --dest hf --config ...' later" in result.err
    assert "--hf-upload-repo" not in result.err
    assert "eval_framework upload" not in result.err
    assert not hub.repos.get("my-org/evals")
