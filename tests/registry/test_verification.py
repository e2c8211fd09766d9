"""Verification by the manifest's own rules, and transfers that cost what they should: XXH128
digests from the real ``wandb.Artifact``, S3 multipart ETags with any part size, truncated objects,
servers that ignore Range, and a stop on a slow link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_framework.errors import DownloadError
from eval_framework.registry import download as dl
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry, same_contents
from eval_framework.registry.sources import HttpSource, S3Source
from eval_framework.registry.wandb_client import manifest_entry
from tests.fakes.storage_http import fake_storage

MiB = 1024 * 1024


def _logged(tmp_path: Path, files: dict[str, bytes], algorithm: str) -> list[ManifestEntry]:
    """Manifest entries exactly as the real SDK writes them for an artifact of these files."""
    import wandb

    folder = tmp_path / f"logged-{algorithm}"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    artifact = wandb.Artifact("tiny", "model", digest_algorithm=algorithm)
    artifact.add_dir(str(folder))
    return [manifest_entry(e) for e in artifact.manifest.entries.values()]


def _served(entries: list[ManifestEntry], storage, files: dict[str, bytes]) -> list[ManifestEntry]:
    return [
        ManifestEntry(e.path, e.size, e.digest, url=storage.put(e.path, files[e.path]), algorithm=e.algorithm)
        for e in entries
    ]


def test_xxh128_artifacts_verify_with_xxh128(tmp_path):
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(300_000)}
    entries = _logged(tmp_path, files, "XXH128")
    assert {e.algorithm for e in entries} == {"XXH128"}
    with fake_storage() as storage:
        download(_served(entries, storage, files), tmp_path / "d", {"wandb": HttpSource()})
        assert (tmp_path / "d" / "model.safetensors").read_bytes() == files["model.safetensors"]
        # wrong bytes under the right name are still caught, with the XXH128 digest
        bad = {**files, "model.safetensors": os.urandom(300_000)}
        with pytest.raises(DownloadError, match=r"model\.safetensors: digest mismatch"):
            download(_served(entries, storage, bad), tmp_path / "e", {"wandb": HttpSource()})
    assert not (tmp_path / "e" / "model.safetensors").exists()


def test_an_unknown_digest_algorithm_is_refused_by_name(tmp_path):
    entry = ManifestEntry("w.bin", 4, "AAAA", url="http://127.0.0.1:9/w", algorithm="SHA3-256")
    with pytest.raises(
        DownloadError, match=r"digest algorithm SHA3-256 \(e.g. for w.bin\).*knows MD5, XXH128"
    ):
        download([entry], tmp_path / "d", {"wandb": HttpSource()})
    assert not (tmp_path / "d" / "w.bin").exists()


def test_same_contents_compares_like_with_like(tmp_path):
    files = {"w.bin": b"weights"}
    xxh = _logged(tmp_path, files, "XXH128")
    md5 = _logged(tmp_path, files, "MD5")
    assert same_contents(xxh, _logged(tmp_path / "again", files, "XXH128"))
    assert same_contents(md5, _logged(tmp_path / "again", files, "MD5"))
    assert not same_contents(xxh, md5)  # not comparable: never taken for the same files


def _multipart(client, bucket: str, key: str, data: bytes, part: int) -> ManifestEntry:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for number, start in enumerate(range(0, len(data), part), 1):
        done = client.upload_part(Bucket=bucket, Key=key, PartNumber=number, UploadId=upload["UploadId"],
                                  Body=data[start : start + part])  # fmt: skip
        parts.append({"ETag": done["ETag"], "PartNumber": number})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})  # fmt: skip
    head = client.head_object(Bucket=bucket, Key=key)
    return ManifestEntry(key, head["ContentLength"], head["ETag"].strip('"'), ref=f"s3://{bucket}/{key}")


def test_multipart_objects_with_any_part_size_verify(s3, tmp_path):
    s3.create_bucket(Bucket="parts")
    data = os.urandom(25 * MiB)  # 12 MiB parts: no guessed size gives this ETag
    entry = _multipart(s3, "parts", "model.safetensors", data, 12 * MiB)
    assert entry.digest.endswith("-3")
    plan = download([entry], tmp_path / "d", {"s3": S3Source()})
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == data
    assert plan.todo
    # present and intact: verified with the store's part size, not fetched again
    again = download([entry], tmp_path / "d", {"s3": S3Source()})
    assert again.todo == []
    assert again.done == [entry]


def test_a_truncated_object_says_so(s3, tmp_path):
    s3.create_bucket(Bucket="short")
    s3.put_object(Bucket="short", Key="w.bin", Body=b"abc")
    entry = ManifestEntry("w.bin", 10, "0" * 32, ref="s3://short/w.bin")
    with pytest.raises(
        DownloadError, match=r"w.bin: the stored object is truncated: it ends after 3 of the 10 bytes"
    ):
        download([entry], tmp_path / "d", {"s3": S3Source()})
    with fake_storage() as storage:
        url = storage.put("w.bin", b"abc")
        with pytest.raises(DownloadError, match="truncated: it ends after 3 of the 10 bytes"):
            download([ManifestEntry("w.bin", 10, "x", url=url)], tmp_path / "e", {"wandb": HttpSource()})
    assert not list((tmp_path / "d").rglob("*bin*"))
    assert not list((tmp_path / "e").rglob("*bin*"))


def test_a_server_that_ignores_range_costs_one_transfer(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RANGED_THRESHOLD", 2 * MiB)
    monkeypatch.setattr(dl, "PART_SIZE", 512 * 1024)
    files = {"model.safetensors": os.urandom(6 * MiB)}
    entries = _logged(tmp_path, files, "MD5")
    with fake_storage() as storage:
        storage.ignore_range = True
        plan = download(_served(entries, storage, files), tmp_path / "d", {"wandb": HttpSource()})
        assert (tmp_path / "d" / "model.safetensors").read_bytes() == files["model.safetensors"]
        assert storage.sent == 6 * MiB
        assert storage.requests == 1
    assert plan.bytes_needed == 6 * MiB


def test_a_stalled_store_is_tried_on_a_fresh_connection_once_then_named(tmp_path, monkeypatch):
    """The bound is on silence, not on the transfer: a read that stalls is retried once on a new
    connection (which may work), and a store silent twice fails naming the setting to raise."""
    monkeypatch.setattr(dl, "RETRY_WAIT_MAX", 0.0)
    monkeypatch.setenv("EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC", "0.5")
    files = {"model.safetensors": os.urandom(MiB)}
    entries = _logged(tmp_path, files, "MD5")
    with fake_storage() as storage:
        storage.stalls, storage.stall_after = 1, 128 * 1024  # one silent answer, then a good one
        download(_served(entries, storage, files), tmp_path / "d", {"wandb": HttpSource()})
        assert (tmp_path / "d" / "model.safetensors").read_bytes() == files["model.safetensors"]
        assert storage.requests == 2

        storage.stalls, storage.requests = 99, 0  # silent for good
        with pytest.raises(DownloadError) as info:
            download(_served(entries, storage, files), tmp_path / "e", {"wandb": HttpSource()})
        assert storage.requests == dl.STALL_TRIES  # not the five tries a 5xx gets
    message = str(info.value)
    assert "stalled" in message, message
    assert "no data for 0.5 s" in message, message
    assert "EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC" in message, message
    assert not list((tmp_path / "e").rglob("*safetensors*"))


SLOW_LINK = """
import sys
from pathlib import Path
from eval_framework.registry.download import download
from eval_framework.registry.manifest import ManifestEntry
from eval_framework.registry.sources import HttpSource

url, size, digest = sys.argv[2], int(sys.argv[3]), sys.argv[4]
entry = ManifestEntry("model.safetensors", size, digest, url=url)
from eval_framework import command_mode
with command_mode():
    download([entry], Path(sys.argv[1]), {"wandb": HttpSource()})
print("finished", flush=True)
"""


def test_sigterm_on_a_slow_link_stops_within_seconds(tmp_path):
    import base64
    import hashlib

    data = os.urandom(8 * MiB)  # one range: at 256 KiB/s, 32 s if the stop waited for it
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    with fake_storage() as storage:
        storage.rate = 256 * 1024
        url = storage.put("model.safetensors", data)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        args = [sys.executable, "-c", SLOW_LINK, str(tmp_path / "d"), url, str(len(data)), digest]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while storage.sent < 256 * 1024 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        signalled, sent_then = time.monotonic(), storage.sent
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - signalled
        assert proc.returncode == 143, err
        assert took < 3.0, f"stopped {took:.1f} s after SIGTERM"
        assert storage.sent - sent_then < 1 * MiB
    assert "finished" not in out
    assert not list((tmp_path / "d").rglob("*safetensors*"))


def test_a_stall_bound_that_is_not_a_number_is_refused(monkeypatch):
    from eval_framework.errors import ConfigError

    monkeypatch.setenv("EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC", "soon")
    with pytest.raises(
        ConfigError, match="EVAL_FRAMEWORK_DOWNLOAD_STALL_SEC='soon' is not a number of seconds"
    ):
        HttpSource()
