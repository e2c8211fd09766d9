"""Verified, cache-free downloads from a real S3 endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval_framework.errors import ConfigError, DownloadError, OutputError, RegistryError
from eval_framework.registry import download as dl
from eval_framework.registry.dest_files import PART_HOST
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry, TransientError, content_md5, same_contents
from eval_framework.registry.sources import FileSource, HttpSource, S3Source, s3_endpoint

MiB = 1024 * 1024


def _bucket(client, name: str, versioned: bool = False) -> str:
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _entry(client, bucket: str, key: str, path: str | None = None) -> ManifestEntry:
    head = client.head_object(Bucket=bucket, Key=key)
    return ManifestEntry(path or key, head["ContentLength"], head["ETag"].strip('"'), ref=f"s3://{bucket}/{key}",
                         version_id=head.get("VersionId"))  # fmt: skip


def _checkpoint(client, bucket: str) -> tuple[list[ManifestEntry], dict[str, bytes]]:
    files = {"model/config.json": b'{"a": 1}', "model/tokenizer.json": os.urandom(1000),
             "model/model.safetensors": os.urandom(3 * MiB + 17)}  # fmt: skip
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    # A multipart object: its ETag is md5-of-md5s with a part count.
    big = os.urandom(11 * MiB)
    upload = client.create_multipart_upload(Bucket=bucket, Key="model/shard-2.safetensors")
    parts = []
    for number, start in enumerate(range(0, len(big), 5 * MiB), 1):
        part = client.upload_part(Bucket=bucket, Key="model/shard-2.safetensors", PartNumber=number,
                                  UploadId=upload["UploadId"], Body=big[start : start + 5 * MiB])  # fmt: skip
        parts.append({"ETag": part["ETag"], "PartNumber": number})
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="model/shard-2.safetensors",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    files["model/shard-2.safetensors"] = big
    return [_entry(client, bucket, key) for key in files], files


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob(".*part-*")]


def test_s3_reference_checkpoint_downloads_verified(s3, tmp_path):
    entries, files = _checkpoint(s3, _bucket(s3, "ckpts"))
    assert any("-" in e.digest for e in entries)  # the multipart ETag is exercised
    plan = download(entries, tmp_path / "dest", {"s3": S3Source()})
    assert len(plan.todo) == 4
    for key, data in files.items():
        assert (tmp_path / "dest" / key).read_bytes() == data
    assert _no_temp_files(tmp_path / "dest")


def test_complete_copy_is_reused_and_partial_completed(s3, tmp_path):
    entries, files = _checkpoint(s3, _bucket(s3, "reuse"))
    download(entries, tmp_path / "d", {"s3": S3Source()})
    # Same size, different bytes: existence and size are not trusted.
    corrupt = tmp_path / "d" / "model" / "tokenizer.json"
    corrupt.write_bytes(b"x" * len(files["model/tokenizer.json"]))
    (tmp_path / "d" / "model" / "config.json").unlink()
    plan = download(entries, tmp_path / "d", {"s3": S3Source()})
    assert sorted(e.path for e in plan.todo) == ["model/config.json", "model/tokenizer.json"]
    assert corrupt.read_bytes() == files["model/tokenizer.json"]
    assert download(entries, tmp_path / "d", {"s3": S3Source()}).todo == []


def test_versioned_bucket_serves_the_pinned_version(s3, tmp_path):
    bucket = _bucket(s3, "versioned", versioned=True)
    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"original weights")
    entry = _entry(s3, bucket, "w.bin")
    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"overwritten later!")
    download([entry], tmp_path / "d", {"s3": S3Source()})
    assert (tmp_path / "d" / "w.bin").read_bytes() == b"original weights"


def test_changed_object_in_unversioned_bucket_is_a_digest_mismatch(s3, tmp_path):
    bucket = _bucket(s3, "unversioned")
    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"original weights")
    entry = _entry(s3, bucket, "w.bin")
    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"changed  weights")  # same size
    with pytest.raises(DownloadError, match="digest mismatch"):
        download([entry], tmp_path / "d", {"s3": S3Source()})
    assert not (tmp_path / "d" / "w.bin").exists()
    assert _no_temp_files(tmp_path / "d")


def test_missing_object_is_explained(s3, tmp_path):
    bucket = _bucket(s3, "gone")
    entry = ManifestEntry("w.bin", 4, "0" * 32, ref=f"s3://{bucket}/w.bin")
    with pytest.raises(DownloadError, match=r"not found .*re-register"):
        download([entry], tmp_path / "d", {"s3": S3Source()})


def test_deleted_pinned_version_is_a_404_and_explained(s3, tmp_path):
    bucket = _bucket(s3, "versioned-gone", versioned=True)
    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"weights")
    entry = _entry(s3, bucket, "w.bin")
    s3.delete_object(Bucket=bucket, Key="w.bin", VersionId=entry.version_id)
    with pytest.raises(DownloadError, match=rf"s3://{bucket}/w.bin version {entry.version_id} not found"):
        download([entry], tmp_path / "d", {"s3": S3Source()})
    assert not (tmp_path / "d" / "w.bin").exists()
    assert _no_temp_files(tmp_path / "d")


@contextlib.contextmanager
def _auth_checked(server: str) -> Iterator[None]:
    """Make the moto server check credentials and IAM policies (it accepts anything by default)."""
    import httpx

    httpx.post(f"{server}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{server}/moto-api/reset-auth", content=b"inf").raise_for_status()


def test_access_denied_is_a_403_that_names_the_credentials(s3, s3_server, tmp_path, monkeypatch):
    import boto3

    allowed, denied = _bucket(s3, "team-open"), _bucket(s3, "team-private")
    for bucket in (allowed, denied):
        s3.put_object(Bucket=bucket, Key="w.bin", Body=b"weights")
    entries = {b: _entry(s3, b, "w.bin", path=f"{b}.bin") for b in (allowed, denied)}
    iam = boto3.client("iam", endpoint_url=s3_server)
    iam.create_user(UserName="evaluator")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{allowed}/*"}]}  # fmt: skip
    iam.put_user_policy(UserName="evaluator", PolicyName="read-open", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="evaluator")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with _auth_checked(s3_server):
        download([entries[allowed]], tmp_path / "d", {"s3": S3Source()})
        with pytest.raises(
            DownloadError, match=r"S3 denied access to s3://team-private/w.bin \(403\); check"
        ) as info:
            download([entries[denied]], tmp_path / "d", {"s3": S3Source()})
    assert (tmp_path / "d" / f"{allowed}.bin").read_bytes() == b"weights"  # earlier results kept
    assert not (tmp_path / "d" / f"{denied}.bin").exists()
    assert _no_temp_files(tmp_path / "d")
    assert key["SecretAccessKey"] not in str(info.value)


def test_missing_credentials_name_the_variables(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        S3Source()


def test_endpoint_without_scheme_gets_https(monkeypatch):
    monkeypatch.delenv("AWS_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "s3.example.internal:9000")
    assert s3_endpoint() == "https://s3.example.internal:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert s3_endpoint() == "http://127.0.0.1:9000"


def test_wandb_stored_files_over_signed_urls(s3, tmp_path):
    bucket = _bucket(s3, "wandb-storage")
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="obj/abc", Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "obj/abc"})
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    download([ManifestEntry("model.safetensors", len(data), digest, url=url)], tmp_path / "d",
             {"wandb": HttpSource()})  # fmt: skip
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == data


def test_file_references(tmp_path):
    src = tmp_path / "shared" / "w.bin"
    src.parent.mkdir()
    src.write_bytes(b"weights on a shared filesystem")
    entry = ManifestEntry("w.bin", src.stat().st_size, hashlib.md5(src.read_bytes()).hexdigest(),
                          ref=f"file://{src}")  # fmt: skip
    download([entry], tmp_path / "d", {"file": FileSource()})
    assert (tmp_path / "d" / "w.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("bad", ["../escape.bin", "/etc/passwd", "a/../../b"])
def test_paths_escaping_the_destination_are_refused(tmp_path, bad):
    with pytest.raises(RegistryError, match="the artifact's manifest lists"):
        download([ManifestEntry(bad, 1, "x", ref="file:///x")], tmp_path / "d", {"file": FileSource()})
    assert not (tmp_path / "escape.bin").exists()


class _Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def read_range(self, entry: ManifestEntry, start: int, end: int) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientError("HTTP 503")
        return b"abcd"[start : end + 1]


def _abcd() -> ManifestEntry:
    return ManifestEntry("f", 4, base64.b64encode(hashlib.md5(b"abcd").digest()).decode(), url="http://x")


def test_transient_errors_are_retried(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RETRY_WAIT_MAX", 0.0)
    flaky = _Flaky(2)
    download([_abcd()], tmp_path / "d", {"wandb": flaky}, attempts=3)
    assert flaky.calls == 3
    assert (tmp_path / "d" / "f").read_bytes() == b"abcd"
    with pytest.raises(DownloadError, match="kept failing after 2 tries"):
        download([_abcd()], tmp_path / "e", {"wandb": _Flaky(5)}, attempts=2)


def test_not_enough_space_says_how_much(tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda _: type("U", (), {"free": 10})())
    entry = ManifestEntry("big", 5 * 10**9, "x", url="http://x")
    with pytest.raises(OutputError, match=r"needs 5\.00 GB more, 0\.00 GB are free"):
        download([entry], tmp_path / "d", {"wandb": _Flaky(0)})


def test_disk_full_mid_download_removes_partial_files(tmp_path, monkeypatch):
    def full(*_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl.os, "pwrite", full)
    with pytest.raises(OutputError, match=r"disk full .*partial files were removed"):
        download([_abcd()], tmp_path / "d", {"wandb": _Flaky(0)})
    assert list((tmp_path / "d").iterdir()) == []


WORKER = """
import json, sys
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry
from eval_framework.registry.sources import S3Source
entries = [ManifestEntry(**e) for e in json.loads(sys.argv[2])]
plan = download(entries, __import__("pathlib").Path(sys.argv[1]), {"s3": S3Source()})
print(len(plan.todo))
"""


def test_concurrent_processes_each_get_a_complete_verified_copy(s3, tmp_path):
    entries, files = _checkpoint(s3, _bucket(s3, "concurrent"))
    payload = json.dumps([e.__dict__ for e in entries])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-c", WORKER, str(tmp_path / "shared"), payload]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    for key, data in files.items():
        assert (tmp_path / "shared" / key).read_bytes() == data
    assert _no_temp_files(tmp_path / "shared")


SLOW_WORKER = """
import hashlib, sys, time
from pathlib import Path
from eval_framework.registry import download as dl
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry
from eval_framework.registry.sources import FileSource

dl.RANGED_THRESHOLD, dl.PART_SIZE = 1024, 1024  # many ranges, so SIGTERM lands mid-file
src = Path(sys.argv[2])

class Slow(FileSource):
    def stream_range(self, entry, start, end, sink):
        if start == 0:
            print("started", flush=True)
        time.sleep(0.05)
        return super().stream_range(entry, start, end, sink)

data = src.read_bytes()
entry = ManifestEntry("model/w.bin", len(data), hashlib.md5(data).hexdigest(), ref=src.as_uri())
from eval_framework import command_mode
with command_mode():  # what a Python API caller does for clean stops
    download([entry], Path(sys.argv[1]), {"file": Slow()}, workers=2)
print("finished", flush=True)
"""


def test_sigterm_mid_download_leaves_no_partial_files(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(400 * 1024))  # 400 ranges at 0.05 s on 2 workers: ~10 s if not stopped
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, str(store), str(src)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    assert list(store.rglob(".*part-*"))  # the part file exists mid-download
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "finished" not in out
    assert not (store / "model" / "w.bin").exists()
    assert _no_temp_files(store)


def test_part_files_of_dead_processes_on_this_host_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dest = tmp_path / "d"
    (dest / "sub").mkdir(parents=True)
    stale = dest / "sub" / f".w.bin.part-{PART_HOST}-{dead.pid}-0123abcd"
    mine = dest / "sub" / f".x.bin.part-{PART_HOST}-{os.getpid()}-0123abcd"
    other_host = dest / "sub" / f".y.bin.part-otherhost{PART_HOST}-{dead.pid}-0123abcd"
    for path in (stale, mine, other_host):
        path.write_bytes(b"partial")
    download([_abcd()], dest, {"wandb": _Flaky(0)})
    assert not stale.exists()
    assert mine.exists()
    assert other_host.exists()
    assert (dest / "f").read_bytes() == b"abcd"


def test_content_md5_from_every_digest_form_and_same_contents():
    data = b"shard bytes"
    md5 = hashlib.md5(data).hexdigest()
    b64 = base64.b64encode(bytes.fromhex(md5)).decode()
    stored = ManifestEntry("w.bin", len(data), b64)
    assert content_md5(stored) == md5
    assert content_md5(ManifestEntry("w.bin", len(data), md5, ref="file:///x/w.bin")) == md5
    assert content_md5(ManifestEntry("w.bin", len(data), f'"{md5}"', ref="s3://b/w.bin")) == md5
    assert content_md5(ManifestEntry("w.bin", len(data), f"{md5}-3", ref="s3://b/w.bin")) is None
    on_s3 = ManifestEntry("w.bin", len(data), md5, ref="s3://b/w.bin")
    assert same_contents([stored], [on_s3])  # the same file, wherever each version keeps it
    assert not same_contents([stored], [ManifestEntry("w.bin", len(data) + 1, b64)])
    assert not same_contents([stored], [ManifestEntry("other.bin", len(data), b64)])
    assert not same_contents([], [])
