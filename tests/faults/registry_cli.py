"""Run the eval_framework command against the fake W&B registry, in its own process.

The W&B registry service cannot run here; the test's fake answers the SDK's GraphQL seam inside
this process (as in tests/registry), with W&B-stored bytes served from the test's S3 endpoint.
Everything after the lookups (download, evaluation, bundle, exit codes, messages) is the real
command. ``EF_SLOW_DOWNLOAD=1`` reads the checkpoint in 1 KiB ranges with a pause, so that a
signal lands mid-download.

    python registry_cli.py BUCKET [eval_framework arguments...]
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from wandb.apis.public import service_api

from eval_framework.cli import run
from eval_framework.registry import download, sources
from tests.fakes.wandb_service import FakeWandb
from tests.registry.test_resolver import _register_shipped

fake = FakeWandb(boto3.client("s3"), sys.argv[1])  # the same bytes in the same bucket every run
_register_shipped(fake)
service_api.ServiceApi.execute_graphql = lambda api, *a, **k: fake.execute_graphql(api, *a, **k)  # type: ignore[method-assign]
service_api.ServiceApi.authenticate = lambda api, *a, **k: fake.authenticate(api, *a, **k)  # type: ignore[method-assign]
service_api.ServiceApi.feature_enabled = lambda *a, **k: False  # type: ignore[method-assign]

if os.environ.get("EF_SLOW_DOWNLOAD"):
    download.RANGED_THRESHOLD, download.PART_SIZE = 1024, 1024
    stream = sources.HttpSource.stream_range

    def slow(
        self: sources.HttpSource, entry: download.ManifestEntry, start: int, end: int, sink: download.Sink
    ) -> download.Received:
        time.sleep(0.05)
        return stream(self, entry, start, end, sink)

    sources.HttpSource.stream_range = slow  # type: ignore[method-assign]

sys.argv = ["eval_framework", *sys.argv[2:]]
run()
