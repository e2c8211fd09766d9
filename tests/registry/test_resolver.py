"""Resolving references end to end: real SDK + fake W&B service + moto S3 + shipped checkpoints."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path

import pytest

from eval_framework.embedded import checkpoint_dir
from eval_framework.errors import ArtifactWaitTimeout
from eval_framework.registry.resolver import ResolveOptions, Resolver
from tests.fakes.wandb_service import FakeFile


def _register_shipped(fake, name: str = "tiny", version: str = "v2") -> dict[str, bytes]:
    """A shipped checkpoint (v2 unless told) as W&B-stored files under hf/, aliased 'prod'."""
    files = {f"hf/{p.name}": p.read_bytes() for p in sorted(checkpoint_dir(version).iterdir())}
    stored = [fake.stored_file(path, data) for path, data in files.items()]
    fake.add_version("wandb-registry-model", name, stored, aliases=("prod",))
    return files


def _local_twin(fake, tmp_path: Path, name: str = "tiny-local", missing: bool = False) -> Path:
    shared = tmp_path / "shared-fs" / "run-9" / "hf"
    shared.mkdir(parents=True)
    entries = []
    for src in sorted(checkpoint_dir("v2").iterdir()):
        data = src.read_bytes()
        (shared / src.name).write_bytes(data)
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()  # as the SDK records it
        entries.append(FakeFile(f"hf/{src.name}", len(data), digest, ref=f"file://{shared / src.name}"))
    if missing:
        (shared / "model.safetensors").unlink()
    fake.add_version("wandb-registry-model", name, entries, aliases=("prod",))
    return shared


def test_resolve_into_persistent_store_then_reuse(fake_wandb, tmp_path, monkeypatch):
    files = _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        first = Resolver().resolve("tiny:prod", stack)
    assert first.path == first.destination / "hf"
    assert not first.in_place
    assert first.downloaded_bytes == sum(len(d) for d in files.values())
    assert first.identity.qualified_name == "acme-org/wandb-registry-model/tiny:v0"
    with contextlib.ExitStack() as stack:
        again = Resolver().resolve("wandb-registry-model/tiny:v0", stack)
    assert again.path == first.path
    assert again.downloaded_bytes == 0
    assert (first.path / "model.safetensors").read_bytes() == files["hf/model.safetensors"]


def test_temporary_destination_is_removed_with_the_stack(fake_wandb, monkeypatch):
    _register_shipped(fake_wandb)
    monkeypatch.delenv("WANDB_ARTIFACT_DIR", raising=False)
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny", stack)
        assert (resolved.path / "config.json").is_file()
    assert not resolved.destination.exists()


def test_local_twin_used_in_place(fake_wandb, tmp_path):
    shared = _local_twin(fake_wandb, tmp_path)
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny:prod", stack)
    assert resolved.in_place
    assert resolved.path == shared
    assert resolved.reference.endswith("tiny-local:prod")
    assert "GetArtifactMembershipFileUrls" not in fake_wandb.calls  # nothing was downloaded


def test_a_twin_holding_the_uploaded_files_belongs_to_the_uploaded_version(fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    shared = _local_twin(fake_wandb, tmp_path)
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny:prod", stack)
    assert resolved.in_place
    assert resolved.path == shared
    assert resolved.downloaded_bytes == 0
    assert resolved.identity.qualified_name == "acme-org/wandb-registry-model/tiny:v0"
    assert "GetArtifactMembershipFileUrls" not in fake_wandb.calls  # compared, not downloaded
    # The result's identity (computed before loading) names the same version.
    assert Resolver().choose(Resolver().parse("tiny:prod")).identity == resolved.identity


def test_a_twin_holding_other_files_keeps_its_own_identity(fake_wandb, tmp_path):
    _register_shipped(fake_wandb, version="v0")  # the upload at 'prod' is another checkpoint
    shared = _local_twin(fake_wandb, tmp_path)
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny:prod", stack)
    assert resolved.in_place
    assert resolved.path == shared
    assert resolved.identity.qualified_name == "acme-org/wandb-registry-model/tiny-local:v0"
    assert Resolver().choose(Resolver().parse("tiny:prod")).identity == resolved.identity


def test_incomplete_twin_waits_then_fails_naming_the_variable(fake_wandb, tmp_path, monkeypatch):
    _local_twin(fake_wandb, tmp_path, missing=True)
    monkeypatch.setenv("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", "0")
    with (
        pytest.raises(ArtifactWaitTimeout, match="WANDB_ARTIFACT_WAIT_TIMEOUT_SEC"),
        contextlib.ExitStack() as s,
    ):
        Resolver().resolve("tiny:prod", s)


def test_incomplete_twin_falls_back_to_the_uploaded_version(fake_wandb, tmp_path, monkeypatch):
    _local_twin(fake_wandb, tmp_path, missing=True)
    _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny:prod", stack)
    assert not resolved.in_place
    assert (resolved.path / "model.safetensors").is_file()


def test_several_checkpoints_need_a_subdir(fake_wandb, tmp_path, monkeypatch):
    files = {
        f"{d}/{p.name}": p.read_bytes() for d in ("step-1", "step-2") for p in checkpoint_dir("v1").iterdir()
    }
    fake_wandb.add_version(
        "wandb-registry-model", "multi", [fake_wandb.stored_file(k, v) for k, v in files.items()]
    )
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with pytest.raises(Exception, match="step-1, step-2"), contextlib.ExitStack() as stack:
        Resolver().resolve("multi", stack)
    with contextlib.ExitStack() as stack:
        resolved = Resolver(options=ResolveOptions(checkpoint_subdir="step-2")).resolve("multi", stack)
    assert resolved.path.name == "step-2"


def test_cli_resolve_prints_path_json_and_dry_run(cli, fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    store = tmp_path / "store"
    dry = cli("resolve", "tiny:prod", "--artifact-dir", store, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = json.loads(dry.out)
    assert plan["bytes_to_fetch"] == plan["bytes"] > 0
    assert not (store / "acme-org").exists()
    result = cli("resolve", "tiny:prod", "--artifact-dir", store)
    assert result.code == 0, result.err
    path = Path(result.out.strip())
    assert (path / "config.json").is_file()
    again = json.loads(cli("resolve", "tiny:prod", "--artifact-dir", store, "--json").out)
    assert again["downloaded_bytes"] == 0
    assert again["version"] == "v0"
    assert "prod" in again["aliases"]
    assert json.loads(cli("resolve", "tiny:prod", "--artifact-dir", store, "--dry-run", "--json").out)[
        "bytes_to_fetch"] == 0  # fmt: skip


def test_cli_resolve_errors(cli, fake_wandb, monkeypatch):
    monkeypatch.delenv("WANDB_ARTIFACT_DIR", raising=False)
    bad = cli("resolve", "a/b/c/d")
    assert bad.code == 2
    assert "accepted forms" in bad.err
    assert fake_wandb.calls == []
    _register_shipped(fake_wandb)
    nodir = cli("resolve", "tiny")
    assert nodir.code == 2
    assert "WANDB_ARTIFACT_DIR" in nodir.err
    missing = cli("resolve", "tiny:v7", "--dry-run")
    assert missing.code == 6
    assert "not found" in missing.err


def test_evaluate_a_registry_checkpoint(cli, fake_wandb, tmp_path):
    _register_shipped(fake_wandb)
    result = cli("--checkpoint", "tiny:prod", "--task-name", "tiny-letters", "--num-samples", "40",
                 "--num-fewshot", "3", "--output-dir", tmp_path / "out")  # fmt: skip
    assert result.code == 0, result.err
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert bundle.name.startswith("tiny-prod__tiny-letters__3shot__40__")
    meta = json.loads((bundle / "metadata.json").read_text())
    reg = meta["model"]["details"]["registry_checkpoint"]
    assert reg["qualified_name"] == "acme-org/wandb-registry-model/tiny:v0"
    assert reg["produced_by"]
    assert meta["model"]["identity"]["artifact"]["qualified_name"] == reg["qualified_name"]
    assert json.loads((bundle / "results.json").read_text())["metrics"]["overall"]["acc"]["value"] > 0.8


def test_cache_skip_false_uses_the_sdk_cached_download(fake_wandb, tmp_path, monkeypatch):
    files = _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_CACHE_SKIP", "false")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        resolved = Resolver().resolve("tiny:prod", stack)
    assert (resolved.path / "model.safetensors").read_bytes() == files["hf/model.safetensors"]
    assert resolved.downloaded_bytes == 0  # not counted by our downloader: the SDK fetched it
    cached = [p for p in (tmp_path / "wandb-cache").rglob("*") if p.is_file()]
    assert cached  # the second copy that WANDB_CACHE_SKIP=true avoids


RESOLVE_WORKER = """
import contextlib, json
from eval_framework.registry.resolver import Resolver

# WANDB_BASE_URL and the key come from the test: every process asks the test's one fake server
with contextlib.ExitStack() as stack:
    resolved = Resolver().resolve("tiny:prod", stack)
print(json.dumps({"path": str(resolved.path), "fetched": resolved.downloaded_bytes}))
"""


def test_concurrent_resolves_transfer_once_and_all_get_a_verified_copy(fake_wandb, tmp_path):
    import os
    import subprocess
    import sys

    files = _register_shipped(fake_wandb)  # creates the bucket the workers share
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]),
           "WANDB_ARTIFACT_DIR": str(tmp_path / "store")}  # fmt: skip
    command = [sys.executable, "-c", RESOLVE_WORKER]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert len({r["path"] for r in results}) == 1
    assert sum(r["fetched"] for r in results) == sum(len(d) for d in files.values())  # one transfer
    root = Path(results[0]["path"])
    for path, data in files.items():
        assert (root / path.removeprefix("hf/")).read_bytes() == data
    assert not list(root.rglob(".*part-*"))


def test_one_version_is_one_folder_however_it_is_spelled(fake_wandb, tmp_path, monkeypatch):
    _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    spellings = ("tiny:prod", "acme/wandb-registry-model/tiny:v0", "acme-org/wandb-registry-model/tiny:v0")
    resolved = []
    for text in spellings:
        with contextlib.ExitStack() as stack:
            resolved.append(Resolver().resolve(text, stack))
    assert {r.destination for r in resolved} == {resolved[0].destination}
    assert [r.downloaded_bytes > 0 for r in resolved] == [True, False, False]  # fetched once
    folders = [p for p in (tmp_path / "store").rglob("*") if p.is_dir() and p.name.startswith("v0-")]
    assert len(folders) == 1
    assert folders[0].parent.parts[-3:] == ("acme-org", "wandb-registry-model", "tiny")


def test_the_version_folder_holds_exactly_the_manifests_files(fake_wandb, tmp_path, monkeypatch):
    files = _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        first = Resolver().resolve("tiny:v0", stack)
    # a stale single-file checkpoint beside sharded weights would be what transformers loads
    (first.path / "pytorch_model.bin").write_bytes(b"stale weights")
    (first.path / "old" / "model.safetensors").parent.mkdir()
    (first.path / "old" / "model.safetensors").write_bytes(b"stale")
    with contextlib.ExitStack() as stack:
        again = Resolver().resolve("tiny:v0", stack)
    held = sorted(
        p.relative_to(again.destination).as_posix() for p in again.destination.rglob("*") if p.is_file()
    )
    assert held == sorted(files)
    assert again.path == first.path


def test_the_same_name_from_another_registry_never_mixes_files(s3, tmp_path, monkeypatch):
    """tiny:v0 from one server is a single file; from another, shards: two folders, each exact."""
    import uuid

    from tests.fakes.wandb_registry_http import registry_server
    from tests.fakes.wandb_service import VALID_KEY, FakeWandb

    monkeypatch.setenv("WANDB_API_KEY", VALID_KEY)
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    layouts = {
        "single": {"hf/config.json": b"{}", "hf/model.safetensors": b"one file"},
        "sharded": {
            "hf/config.json": b"{}",
            "hf/model-00001-of-00002.safetensors": b"shard 1",
            "hf/model-00002-of-00002.safetensors": b"shard 2",
            "hf/model.safetensors.index.json": b'{"weight_map": {}}',
        },
    }
    for files in layouts.values():
        fake = FakeWandb(s3, f"wandb-storage-{uuid.uuid4().hex[:12]}")
        fake.add_version("wandb-registry-model", "tiny", [fake.stored_file(p, d) for p, d in files.items()])
        with registry_server(fake) as server:
            monkeypatch.setenv("WANDB_BASE_URL", server.url)
            with contextlib.ExitStack() as stack:
                resolved = Resolver().resolve("tiny:v0", stack)
        held = [
            p.relative_to(resolved.destination).as_posix()
            for p in resolved.destination.rglob("*")
            if p.is_file()
        ]
        assert sorted(held) == sorted(files)


def test_cache_skip_false_never_keeps_corrupt_bytes(fake_wandb, tmp_path, monkeypatch):
    from eval_framework.errors import DownloadError

    files = _register_shipped(fake_wandb)
    monkeypatch.setenv("WANDB_CACHE_SKIP", "false")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "store"))
    with contextlib.ExitStack() as stack:
        first = Resolver().resolve("tiny:prod", stack)
    weights = files["hf/model.safetensors"]
    (cached,) = [
        p for p in (tmp_path / "wandb-cache").rglob("*") if p.is_file() and p.read_bytes() == weights
    ]
    cached.write_bytes(bytes(len(weights)))  # the same size, other bytes: the SDK serves them as a hit
    (first.path / "model.safetensors").unlink()
    with (
        pytest.raises(
            DownloadError, match=r"W&B cache delivered bytes that do not match the manifest for hf/model"
        ),
        contextlib.ExitStack() as stack,
    ):
        Resolver().resolve("tiny:prod", stack)
    assert not cached.exists()
    assert not (first.path / "model.safetensors").exists()
    with contextlib.ExitStack() as stack:  # the next run fetches them anew
        again = Resolver().resolve("tiny:prod", stack)
    assert (again.path / "model.safetensors").read_bytes() == weights
