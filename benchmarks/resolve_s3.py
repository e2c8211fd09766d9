"""Resolve a multi-file checkpoint of about 1 GB from a local S3 endpoint, three ways, in one run.

    python benchmarks/resolve_s3.py [--gb 1.0] [--shards 4] [--small-files 200]

- ours:  ``Resolver.resolve`` (cache-free, verified, ranged) into an artifact dir
- sdk:   the wandb SDK's ``Artifact.download()`` with its cache on (the default)
- boto3: a plain ``boto3`` ``download_file`` of the same objects (no verification)

The registry lookups go through the real wandb SDK answered by the test suite's fake W&B service;
bytes come from a moto S3 server on 127.0.0.1. Peak disk is sampled every 0.1 s over the
directories each method writes (destination plus, for the SDK, its cache).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024


def du(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        for dirpath, _, names in os.walk(root):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def measure(fn: Callable[[], None], watched: list[Path]) -> tuple[float, int]:
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], du(watched))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    return elapsed, max(peak[0], du(watched))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--small-files", type=int, default=200)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer
    from wandb.apis.public import service_api

    from eval_framework.registry.resolver import ResolveOptions, Resolver
    from tests.fakes.wandb_service import VALID_KEY, FakeFile, FakeWandb

    work = Path(tempfile.mkdtemp(prefix="bench-resolve-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        WANDB_API_KEY=VALID_KEY,
        WANDB_SILENT="true",
        WANDB_CACHE_DIR=str(work / "sdk-cache"),
    )
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ckpts")
    fake = FakeWandb(s3, "wandb-storage")
    service_api.ServiceApi.execute_graphql = lambda api, *a, **k: fake.execute_graphql(api, *a, **k)  # type: ignore[method-assign]
    service_api.ServiceApi.authenticate = lambda *a, **k: None  # type: ignore[method-assign]
    service_api.ServiceApi.feature_enabled = lambda *a, **k: False  # type: ignore[method-assign]

    print(f"uploading {args.gb:g} GB ({args.shards} shards + {args.small_files} small files) ...", flush=True)
    shard_size = int(args.gb * 1024**3 * 0.98 / args.shards)
    keys: list[tuple[str, int]] = []
    block = os.urandom(8 * MiB)
    for i in range(args.shards):
        key = f"run/model-{i:05d}-of-{args.shards:05d}.safetensors"
        src = work / "upload.bin"
        with src.open("wb") as handle:
            left = shard_size
            while left > 0:
                handle.write(block[: min(left, len(block))])
                left -= len(block)
        s3.upload_file(str(src), "ckpts", key)
        keys.append((key, shard_size))
        src.unlink()
    for i in range(args.small_files):
        data = os.urandom(20_000 + 37 * i)
        key = f"run/extra/file-{i:04d}.json"
        s3.put_object(Bucket="ckpts", Key=key, Body=data)
        keys.append((key, len(data)))
    s3.put_object(Bucket="ckpts", Key="run/config.json", Body=b'{"model_type": "llama"}')
    keys.append(("run/config.json", 23))
    entries = []
    for key, size in keys:
        etag = s3.head_object(Bucket="ckpts", Key=key)["ETag"].strip('"')
        entries.append(
            FakeFile(key.removeprefix("run/"), size, etag, ref=f"s3://ckpts/{key}", extra={"etag": etag})
        )
    fake.add_version("wandb-registry-model", "bench", entries)
    total = sum(size for _, size in keys)

    def ours() -> None:
        with contextlib.ExitStack() as stack:
            Resolver(options=ResolveOptions(artifact_dir=work / "ours", cache_skip=True)).resolve(
                "bench", stack
            )

    def sdk() -> None:
        import wandb

        path = wandb.Api().artifact("wandb-registry-model/bench:latest").download(root=str(work / "sdk"))
        got = sum(1 for p in Path(path).rglob("*") if p.is_file())
        if got != len(keys):
            raise SystemExit(f"the SDK downloaded {got} of {len(keys)} files into {path}")

    def plain_boto3() -> None:
        client = boto3.client("s3")

        def one(item: tuple[str, int]) -> None:
            target = work / "boto3" / item[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file("ckpts", item[0], str(target))

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(one, keys))

    results = {}
    for name, fn, watched in (
        ("ours", ours, [work / "ours"]),
        ("sdk (cache on)", sdk, [work / "sdk", work / "sdk-cache"]),
        ("boto3", plain_boto3, [work / "boto3"]),
    ):
        for path in watched:
            path.mkdir(parents=True, exist_ok=True)
        seconds, peak = measure(fn, watched)
        results[name] = (seconds, peak)
        rate = total / seconds / 1e6
        print(f"{name:16s} {seconds:7.2f} s  {rate:8.1f} MB/s  peak disk {peak / 1e9:6.2f} GB", flush=True)
    server.stop()
    shutil.rmtree(work, ignore_errors=True)

    ours_s, ours_d = results["ours"]
    sdk_s, sdk_d = results["sdk (cache on)"]
    boto_s, _ = results["boto3"]
    print(f"\ncheckpoint: {total / 1e9:.2f} GB in {len(keys)} files")
    print(f"speed vs SDK:   {sdk_s / ours_s:.2f}x   (target >= 1.0)")
    print(f"disk vs SDK:    {ours_d / sdk_d:.2f}x   (target <= 0.5)")
    print(f"speed vs boto3: {boto_s / ours_s:.2f}x   (target >= 0.9)")


if __name__ == "__main__":
    main()
