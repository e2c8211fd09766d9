"""Registry lookups through the real wandb SDK, answered by the fake service at its seam."""

from __future__ import annotations

import hashlib

import pytest

from eval_framework.errors import RegistryError
from eval_framework.registry.download import download
from eval_framework.registry.reference import parse_reference
from eval_framework.registry.sources import HttpSource, S3Source
from eval_framework.registry.wandb_client import WandbRegistry
from tests.fakes.wandb_service import FakeFile


def _register(fake, s3) -> dict[str, bytes]:
    s3.create_bucket(Bucket="ref-weights")
    weights = b"w" * 4096
    s3.put_object(Bucket="ref-weights", Key="run7/model.safetensors", Body=weights)
    etag = s3.head_object(Bucket="ref-weights", Key="run7/model.safetensors")["ETag"].strip('"')
    files = [
        fake.stored_file("config.json", b'{"model_type": "gpt2"}'),
        fake.stored_file("tokenizer.json", b"{}"),
        FakeFile("model.safetensors", len(weights), etag, ref="s3://ref-weights/run7/model.safetensors",
                 extra={"etag": etag}),
    ]  # fmt: skip
    fake.add_version("wandb-registry-model", "llama-sft", [fake.stored_file("config.json", b"{}")])
    fake.add_version("wandb-registry-model", "llama-sft", files, aliases=("prod",))
    return {"config.json": b'{"model_type": "gpt2"}', "tokenizer.json": b"{}", "model.safetensors": weights}


FORMS = [
    "acme/wandb-registry-model/llama-sft:prod",
    "wandb-registry-model/llama-sft:v1",
    "llama-sft",
    "llama-sft:latest",
]


@pytest.mark.parametrize("text", FORMS)
def test_lookup_by_every_reference_form(fake_wandb, s3, text):
    _register(fake_wandb, s3)
    client = WandbRegistry()
    artifact = client.artifact(parse_reference(text))
    ident = client.identity(artifact)
    assert ident.qualified_name == "acme-org/wandb-registry-model/llama-sft:v1"
    assert ident.collection == "llama-sft"
    assert ident.version == "v1"
    assert ident.source_version == "v4"
    assert set(ident.aliases) == {"latest", "prod"}
    assert ident.produced_by == "alice/train/run-abc"
    assert ident.digest == artifact.digest
    assert ident.source_name == "llama-sft-source:v4"


def test_entries_then_verified_download(fake_wandb, s3, tmp_path):
    expected = _register(fake_wandb, s3)
    client = WandbRegistry()
    ref = parse_reference("llama-sft:prod")
    entries = client.entries(client.artifact(ref), ref)
    by_path = {e.path: e for e in entries}
    assert by_path["model.safetensors"].ref == "s3://ref-weights/run7/model.safetensors"
    assert by_path["config.json"].url
    assert by_path["config.json"].ref is None
    download(entries, tmp_path / "d", {"wandb": HttpSource(), "s3": S3Source()})
    for name, data in expected.items():
        assert hashlib.sha256((tmp_path / "d" / name).read_bytes()).digest() == hashlib.sha256(data).digest()


def test_unknown_alias_and_collection(fake_wandb, s3):
    _register(fake_wandb, s3)
    client = WandbRegistry()
    available = r"llama-sft has versions v0\.\.v1 \(latest v1\), aliases: latest, prod; check"
    with pytest.raises(RegistryError, match=r"llama-sft:v9 not found.*; " + available):
        client.artifact(parse_reference("llama-sft:v9"))
    with pytest.raises(RegistryError, match=r"llama-sft:staging not found.*; " + available):
        client.artifact(parse_reference("llama-sft:staging"))
    with pytest.raises(RegistryError, match="no-such-model:latest not found"):
        client.artifact(parse_reference("no-such-model"))
    with pytest.raises(RegistryError, match="no collection 'no-such-model' in wandb-registry-model"):
        client.artifact(parse_reference("no-such-model:prod"))
    assert client.exists(parse_reference("llama-sft:prod"))
    assert not client.exists(parse_reference("llama-sft-local:prod"))


def test_no_api_key(fake_wandb, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RegistryError, match="no W&B API key found: set WANDB_API_KEY"):
        WandbRegistry()


@pytest.mark.parametrize("key", ["x" * 40, "local-" + "y" * 40])
def test_invalid_api_key_is_named_and_not_printed(fake_wandb, monkeypatch, key):
    monkeypatch.setenv("WANDB_API_KEY", key)
    with pytest.raises(RegistryError, match="check WANDB_API_KEY") as info:
        WandbRegistry()
    assert key not in str(info.value)


def test_service_unreachable(fake_wandb, s3, monkeypatch):
    # wandb-core retries a refused connection for ~20 s by default; the SDK's own setting bounds it
    monkeypatch.setenv("WANDB__GRAPHQL_RETRY_MAX", "1")
    _register(fake_wandb, s3)
    client = WandbRegistry()
    fake_wandb.server.go_down()  # the server goes away between the login and the lookup
    with pytest.raises(
        RegistryError, match=r"failed: cannot reach the W&B server .*check network access and WANDB_BASE_URL"
    ):
        client.artifact(parse_reference("llama-sft:prod"))


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [
        ("refused", r"\(connection refused\)"),
        ("500", r"\(HTTP 500\)"),
        ("401", r"refused the credentials \(HTTP 401\): check WANDB_API_KEY"),
    ],
)
def test_an_unusable_server_is_named_before_the_sdk_is_asked(fake_wandb, monkeypatch, behaviour, says):
    """The SDK's own login check calls all of these "rejected the API key", after ~20 s."""
    import time

    from eval_framework.registry import wandb_client
    from tests.fakes.wandb_http import fake_wandb_http, refused_url

    monkeypatch.setattr(wandb_client, "PROBE_WAIT_MAX", 0.0)
    with fake_wandb_http("500" if behaviour == "500" else "401") as server:
        url = refused_url() if behaviour == "refused" else server.url
        monkeypatch.setenv("WANDB_BASE_URL", url)
        started = time.monotonic()
        with pytest.raises(RegistryError, match=rf"cannot look up registry checkpoints: .*{says}") as info:
            WandbRegistry()
    assert time.monotonic() - started < 10
    assert url in str(info.value)
    assert fake_wandb.calls == []  # the SDK was never asked


def test_a_malformed_key_is_said_to_be_malformed(fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "too-short")
    with pytest.raises(RegistryError, match="WANDB_API_KEY is malformed") as info:
        WandbRegistry()
    assert "too-short" not in str(info.value)
