"""Failures of the W&B server as the real SDK and its wandb-core service meet them over HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_framework.errors import RegistryError
from eval_framework.registry.resolver import Resolver
from tests.registry.test_resolver import _register_shipped


def test_a_failing_twin_check_names_the_reference_the_user_typed(fake_wandb, monkeypatch):
    _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS", "0.5")
    fake_wandb.server.after_login = "500"  # the login check passes, every lookup fails
    with pytest.raises(RegistryError) as info, contextlib.ExitStack() as stack:
        Resolver().resolve("tiny:prod", stack)
    message = str(info.value)
    assert "wandb-registry-model/tiny:prod" in message, message
    assert "tiny-local" not in message, message
    # wandb-core says "HTTP 500", or on a loaded machine that its retries ran out of time
    assert "HTTP 500" in message or "did not answer in time" in message, message
    assert "API key" not in message, message


def test_a_server_that_hangs_after_login_never_hangs_the_command(fake_wandb, tmp_path):
    """The error is printed and the process ends: the SDK's teardown (which joins wandb-core) is
    bounded, whatever state the service is left in."""
    _register_shipped(fake_wandb)
    fake_wandb.server.after_login = "hang"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "WANDB_HTTP_TIMEOUT": "2",
           "WANDB__GRAPHQL_RETRY_MAX": "1", "WANDB_ARTIFACT_DIR": str(tmp_path / "store")}  # fmt: skip
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "eval_framework", "resolve", "tiny:prod"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 6, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "did not answer in time" in lines[0], done.stderr
    assert took < 60, f"the command took {took:.0f} s to end after its error"


@pytest.mark.parametrize("operation", ["ArtifactMembershipByName", "GetArtifactMembershipFileUrls"])
def test_a_lookup_that_hangs_is_bounded_by_wandb_http_timeout(fake_wandb, monkeypatch, tmp_path, operation):
    """Every lookup waits WANDB_HTTP_TIMEOUT, the file-URL query too (the SDK's own call for it
    waits a fixed 60 s per try and retries for 3 minutes), and the message names the setting."""
    _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    fake_wandb.server.per_operation[operation] = "hang"
    with pytest.raises(RegistryError) as info, contextlib.ExitStack() as stack:
        Resolver().resolve("tiny:prod", stack)
    message = str(info.value)
    assert "wandb-registry-model/tiny:prod" in message, message
    assert "no answer within 2 s" in message, message
    assert "WANDB_HTTP_TIMEOUT" in message, message
    assert "API key" not in message, message
    assert fake_wandb.server.operations.count(operation) <= 2  # one wait, not retries for minutes
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.safetensors"))
