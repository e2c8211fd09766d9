"""Fixtures for the sinks: finished bundles from real (tiny) evaluations, W&B offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_framework.sinks import hf_hub, wandb_mode, wandb_sink
from tests.fakes.hf_hub import VALID_TOKEN, FakeHub

EVAL = ["--llm-name", "embedded", "--llm-args", "version=v0", "--task-name", "tiny-letters",
        "--num-fewshot", "2", "--num-samples", "24"]  # fmt: skip


@pytest.fixture(autouse=True)
def _wandb_quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_ADDITIONAL_ARTIFACT_REFERENCES", raising=False)
    monkeypatch.setattr(wandb_sink, "RETRY_WAIT_MAX", 0.0)
    monkeypatch.setattr(wandb_mode, "said", set())  # each test is a fresh process for these
    monkeypatch.setattr(wandb_mode, "rejected_keys", set())


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    """The Hugging Face Hub, faked at the HfApi boundary with the client's own errors."""
    from huggingface_hub import constants

    fake = FakeHub()
    monkeypatch.setattr(hf_hub, "hf_api", fake.api)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the fake is the Hub: nothing leaves
    return fake


@pytest.fixture
def bundle(cli, tmp_path) -> Path:
    """A finished bundle, evaluated without any sink."""
    result = cli(*EVAL, "--output-dir", tmp_path / "out")
    assert result.code == 0, result.err
    (found,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    return found


from tests.registry.conftest import fake_wandb, s3, s3_server, wandb_http  # noqa: E402, F401  (shared fixtures)
