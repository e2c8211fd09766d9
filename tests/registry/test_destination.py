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
from eval_framework.registry import parse_reference
from eval_framework.registry.destination import TEMP_PREFIX, checkpoint_destination

REF = parse_reference("acme/wandb-registry-model/llama-sft:prod")


def test_persistent_store_from_env_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with checkpoint_destination(REF, "v7") as first:
        (first / "config.json").write_text("{}")
    with checkpoint_destination(REF, "v7") as again:
        assert again == first and (again / "config.json").exists()
    assert first == tmp_path / "store" / "acme" / "wandb-registry-model" / "llama-sft" / "v7"


def test_explicit_dir_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "env"))
    with checkpoint_destination(REF, "v1", explicit=tmp_path / "flag") as dest:
        assert tmp_path / "flag" in dest.parents


def test_unusable_store_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "file" / "store"))
    with pytest.raises(ConfigError, match="WANDB_ARTIFACT_DIR"), checkpoint_destination(REF, "v1"):
        pass


def test_temporary_destination_removed_on_exit_and_exception(monkeypatch):
    monkeypatch.delenv("WANDB_ARTIFACT_DIR", raising=False)
    with checkpoint_destination(REF, "v1") as dest:
        assert dest.name.startswith(TEMP_PREFIX)
        (dest / "w.bin").write_bytes(b"x")
    assert not dest.exists()
    with pytest.raises(RuntimeError), checkpoint_destination(REF, "v1") as failing:
        raise RuntimeError("boom")
    assert not failing.exists()


CHILD = """
import sys, time
from eval_framework.registry import parse_reference
from eval_framework.registry.destination import checkpoint_destination
with checkpoint_destination(parse_reference("x:v1"), "v1") as dest:
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
