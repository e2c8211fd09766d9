"""Run the eval_framework command against the fake W&B registry, in its own process.

The W&B registry service cannot run here; the fake registry is served over HTTP from this process
(tests/fakes/wandb_registry_http.py, as in tests/registry), and the real SDK and its wandb-core
service talk to it through WANDB_BASE_URL, with W&B-stored bytes served from the test's S3
endpoint. Everything else (lookups, download, evaluation, bundle, exit codes, messages) is the
real command. ``EF_SLOW_DOWNLOAD=1`` reads the checkpoint in 1 KiB ranges with a pause, so that a
signal lands mid-download.

    python registry_cli.py BUCKET [eval_framework arguments...]
"""

from __future__ import annotations

import os
import sys
import time

import boto3

from eval_framework.cli import run
from eval_framework.registry import download, manifest, sources
from tests.fakes.wandb_registry_http import registry_server
from tests.fakes.wandb_service import FakeWandb
from tests.registry.test_resolver import _register_shipped

fake = FakeWandb(boto3.client("s3"), sys.argv[1])  # the same bytes in the same bucket every run
_register_shipped(fake)
serving = registry_server(fake)  # kept referenced: it serves until the process ends
os.environ["WANDB_BASE_URL"] = serving.__enter__().url

if os.environ.get("EF_SLOW_DOWNLOAD"):
    download.RANGED_THRESHOLD, download.PART_SIZE = 1024, 1024
    stream = sources.HttpSource.stream_range

    def slow(
        self: sources.HttpSource, entry: manifest.ManifestEntry, start: int, end: int, sink: manifest.Sink
    ) -> manifest.Received:
        time.sleep(0.05)
        return stream(self, entry, start, end, sink)

    sources.HttpSource.stream_range = slow  # type: ignore[method-assign]

sys.argv = ["eval_framework", *sys.argv[2:]]
run()
