"""Persistent vs temporary checkpoint destinations, and cleanup on every ordinary exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_framework.errors import ConfigError
from eval_framework.registry.destination import TEMP_PREFIX, checkpoint_destination, version_dirname
from eval_framework.registry.wandb_client import ArtifactIdentity


def _identity(version: str, digest: str = "0123456789abcdef" * 2) -> ArtifactIdentity:
    return ArtifactIdentity(
        qualified_name=f"acme-org/wandb-registry-model/llama-sft:{version}",
        collection="llama-sft",
        version=version,
        source_version="v3",
        source_name="llama-sft:v3",
        aliases=("prod",),
        digest=digest,
        produced_by=None,
    )


V7, V1 = _identity("v7"), _identity("v1")


def test_persistent_store_from_env_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with checkpoint_destination(V7) as first:
        (first / "config.json").write_text("{}")
    with checkpoint_destination(V7) as again:
        assert again == first
        assert (again / "config.json").exists()
    # keyed by what the server resolved: the org entity, the version and its digest
    assert (
        first
        == tmp_path / "store" / "acme-org" / "wandb-registry-model" / "llama-sft" / "v7-0123456789abcdef"
    )


def test_another_digest_is_another_folder():
    assert version_dirname(V7) != version_dirname(_identity("v7", "f" * 32))


def test_explicit_dir_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "env"))
    with checkpoint_destination(V1, explicit=tmp_path / "flag") as dest:
        assert tmp_path / "flag" in dest.parents


def test_unusable_store_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "file" / "store"))
    with pytest.raises(ConfigError, match="WANDB_ARTIFACT_DIR"), checkpoint_destination(V1):
        pass


def test_temporary_destination_removed_on_exit_and_exception(monkeypatch):
    monkeypatch.delenv("WANDB_ARTIFACT_DIR", raising=False)
    with checkpoint_destination(V1) as dest:
        assert dest.name.startswith(TEMP_PREFIX)
        (dest / "w.bin").write_bytes(b"x")
    assert not dest.exists()
    with pytest.raises(RuntimeError), checkpoint_destination(V1) as failing:
        raise RuntimeError("boom")
    assert not failing.exists()


CHILD = """
import sys, time
from types import SimpleNamespace
from eval_framework import command_mode
from eval_framework.registry.destination import checkpoint_destination
version = SimpleNamespace(qualified_name="e/p/x:v1", digest="0" * 32)
with command_mode(), checkpoint_destination(version) as dest:
    (dest / "partial.bin").write_bytes(b"x" * 1000)
    print(dest, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_temporary_destination_removed_on_signals(sig, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_ARTIFACT_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    dest = Path(proc.stdout.readline().strip())
    assert dest.is_dir()
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    deadline = time.time() + 5
    while dest.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not dest.exists()
