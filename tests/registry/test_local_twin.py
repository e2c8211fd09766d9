"""The -local twin: in-place use when all files are here, otherwise a bounded wait."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from eval_framework.errors import ArtifactWaitTimeout, ConfigError
from eval_framework.registry.local_twin import (
    check_twin,
    in_place_root,
    wait_timeout,
    wait_until,
)
from eval_framework.registry.manifest import ManifestEntry, digest_is_of_uri, same_contents


def _file_entry(root: Path, rel: str, data: bytes) -> ManifestEntry:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ManifestEntry(rel, len(data), hashlib.md5(data).hexdigest(), ref=f"file://{path}")


def test_complete_twin_is_used_in_place(tmp_path):
    shared = tmp_path / "shared" / "run-7" / "ckpt"
    entries = [
        _file_entry(shared, "config.json", b"{}"),
        _file_entry(shared, "model.safetensors", b"w" * 100),
    ]
    check = check_twin(entries)
    assert check.usable
    assert not check.problems
    assert in_place_root(check, tmp_path / "scratch") == shared
    assert not (tmp_path / "scratch").exists()  # nothing copied or linked


def test_scattered_files_get_a_symlink_view(tmp_path):
    a = _file_entry(tmp_path / "disk1", "config.json", b"{}")
    b = _file_entry(tmp_path / "disk2", "model.safetensors", b"w")
    b = ManifestEntry("weights/model.safetensors", b.size, b.digest, ref=b.ref)
    root = in_place_root(check_twin([a, b]), tmp_path / "scratch")
    assert root == tmp_path / "scratch"
    assert (root / "weights" / "model.safetensors").resolve() == tmp_path / "disk2" / "model.safetensors"


def test_incomplete_twin_lists_what_is_wrong(tmp_path):
    good = _file_entry(tmp_path, "config.json", b"{}")
    short = _file_entry(tmp_path, "model.safetensors", b"w" * 10)
    short = ManifestEntry(short.path, 20, short.digest, ref=short.ref)
    changed = _file_entry(tmp_path, "tok.json", b"abc")
    changed = ManifestEntry(changed.path, 3, hashlib.md5(b"xyz").hexdigest(), ref=changed.ref)
    gone = ManifestEntry("gone.bin", 1, "0", ref=f"file://{tmp_path}/gone.bin")
    s3 = ManifestEntry("s3.bin", 1, "0", ref="s3://b/k")
    check = check_twin([good, short, changed, gone, s3])
    assert not check.usable
    text = "\n".join(check.problems)
    assert "has 10 bytes, expected 20" in text
    assert "does not match its recorded digest" in text
    assert "gone.bin is missing" in text
    assert "not a file:// reference" in text
    assert check_twin([]).usable is False


def test_digest_skipped_when_expensive(tmp_path):
    changed = _file_entry(tmp_path, "w.bin", b"abc")
    changed = ManifestEntry("w.bin", 3, "0" * 32, ref=changed.ref)
    assert check_twin([changed], verify_limit=1).usable


def test_wait_polls_with_backoff_until_ready():
    now, slept, answers = [0.0], [], iter([False, False, False, True])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    wait_until(
        lambda: next(answers), "x:v1", 100, first_delay=5, max_delay=8, sleep=sleep, clock=lambda: now[0]
    )
    assert slept == [5, 8, 8]


def test_wait_times_out_naming_the_variable():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ArtifactWaitTimeout, match="WANDB_ARTIFACT_WAIT_TIMEOUT_SEC") as info:
        wait_until(lambda: False, "acme/wandb-registry-model/llama:v3", 12, sleep=sleep, clock=lambda: now[0])
    assert "within 12 s" in str(info.value)
    assert now[0] == 12


def test_wait_timeout_from_env(monkeypatch):
    monkeypatch.delenv("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", raising=False)
    assert wait_timeout() == 3600
    monkeypatch.setenv("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", "90")
    assert wait_timeout() == 90
    monkeypatch.setenv("WANDB_ARTIFACT_WAIT_TIMEOUT_SEC", "soon")
    with pytest.raises(ConfigError, match="not a number"):
        wait_timeout()


def _sdk_entries(directory: Path, checksum: bool) -> list[ManifestEntry]:
    """file:// entries exactly as the wandb SDK records them (``add_reference``)."""
    import wandb

    artifact = wandb.Artifact("twin", type="model")
    artifact.add_reference(f"file://{directory}", checksum=checksum)
    return [ManifestEntry(str(e.path), int(e.size or 0), str(e.digest), ref=str(e.ref))
            for e in artifact.manifest.entries.values()]  # fmt: skip


def test_twins_recorded_by_the_sdk_with_or_without_checksums(tmp_path):
    shared = tmp_path / "shared" / "ckpt"
    shared.mkdir(parents=True)
    (shared / "config.json").write_bytes(b'{"model_type": "gpt2"}')
    (shared / "model.safetensors").write_bytes(b"w" * 4096)
    with_md5, uri_only = _sdk_entries(shared, checksum=True), _sdk_entries(shared, checksum=False)
    assert check_twin(with_md5).usable
    assert check_twin(uri_only).usable
    assert not any(digest_is_of_uri(e) for e in with_md5)
    assert all(digest_is_of_uri(e) for e in uri_only)
    assert same_contents(with_md5, with_md5)
    assert not same_contents(uri_only, uri_only)
    (shared / "model.safetensors").write_bytes(b"x" * 4096)  # same size, other content
    assert not check_twin(with_md5).usable  # the content digest catches it
    assert check_twin(uri_only).usable  # only the size can be checked
