"""Shared fixtures: a real S3 endpoint (moto server on 127.0.0.1) and the fake W&B service."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest

from eval_framework.registry import download as dl

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setattr(dl, "RETRY_WAIT_MAX", 0.0)
    monkeypatch.setattr(dl, "RANGED_THRESHOLD", 2 * MiB)  # exercise ranged reads on small files
    monkeypatch.setattr(dl, "PART_SIZE", 512 * 1024)
    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture
def wandb_http() -> Iterator[str]:
    """The W&B server's address for the plain reachability check made before the SDK is asked."""
    from tests.fakes.wandb_http import fake_wandb_http

    with fake_wandb_http("ok") as server:
        yield server.url


@pytest.fixture
def fake_wandb(s3, monkeypatch):
    """The real wandb SDK and its wandb-core service, answered over HTTP by the in-memory registry
    (tests/fakes/wandb_registry_http.py): login check, lookups, manifests and file URLs all cross
    the wire with the SDK's own timeouts, retries and paging."""
    from tests.fakes.wandb_registry_http import registry_server
    from tests.fakes.wandb_service import VALID_KEY, FakeWandb

    fake = FakeWandb(s3, f"wandb-storage-{uuid.uuid4().hex[:12]}")
    with registry_server(fake) as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        monkeypatch.setenv("WANDB_API_KEY", VALID_KEY)
        monkeypatch.setenv("WANDB_SILENT", "true")
        fake.server = server  # type: ignore[attr-defined]
        yield fake
        assert not server.unknown, f"operations the fake W&B server does not implement: {server.unknown}"
