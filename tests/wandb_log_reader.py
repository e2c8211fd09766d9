"""Read a run's ``.wandb`` transaction log back (the format is in the wandb SDK notes).

7-byte file header (``:W&B``, magic 0xBEE1 little-endian, version 0), then leveldb-log framing in
32 KiB blocks counted from the start of the file: each chunk has a 7-byte header (CRC32 u32,
length u16, type u8: FULL=1, FIRST=2, MIDDLE=3, LAST=4); payloads are ``Record`` protobufs.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    assert struct.unpack("<H", data[4:6])[0] == 0xBEE1, path
    assert data[6] == 0, path
    records, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if length == 0 and kind == 0:
            pos += left_in_block  # zero padding at the end of a block
            continue
        payload = data[pos + HEADER : pos + HEADER + length]
        assert zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF == crc, f"bad CRC at {pos} in {path}"
        pos += HEADER + length
        if kind == FULL:
            pending = payload
        elif kind == FIRST:
            pending = payload
            continue
        elif kind == MIDDLE:
            pending += payload
            continue
        else:
            assert kind == LAST, kind
            pending += payload
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        records.append(record)
        pending = b""
    return records


@dataclass
class RunLog:
    """What a run recorded, in the shape tests assert on."""

    run: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Any] = field(default_factory=list)
    use_artifacts: list[Any] = field(default_factory=list)
    preempting: int = 0
    exit_code: int | None = None
    kinds: list[str] = field(default_factory=list)


def _value(item: Any) -> Any:
    return json.loads(item.value_json) if item.value_json else None


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(path: Path) -> RunLog:
    out = RunLog()
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        out.kinds.append(kind)
        if kind == "run":
            out.run = record.run
            for item in record.run.config.update:
                out.config[_key(item)] = _value(item)
            for item in record.run.summary.update:
                out.summary[_key(item)] = _value(item)
        elif kind == "config":
            for item in record.config.update:
                out.config[_key(item)] = _value(item)
            for item in record.config.remove:
                out.config.pop(_key(item), None)
        elif kind == "summary":
            for item in record.summary.update:
                out.summary[_key(item)] = _value(item)
            for item in record.summary.remove:
                out.summary.pop(_key(item), None)
        elif kind == "history":
            out.history.append({_key(i): _value(i) for i in record.history.item})
        elif kind == "artifact":
            out.artifacts.append(record.artifact)
        elif kind == "use_artifact":
            out.use_artifacts.append(record.use_artifact)
        elif kind == "preempting":
            out.preempting += 1
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    out.config.pop("_wandb", None)
    return out


def flush_service() -> None:
    """Make finished runs' transaction logs complete on disk.

    ``run.finish()`` returns before the SDK's service has flushed the log (a small run's file can
    still be just its header); the service flushes when it shuts down, which a real process does
    at exit. In-process tests shut it down here, as that exit would.
    """
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def run_files(wandb_dir: Path) -> list[Path]:
    """Every offline run's transaction log under ``wandb_dir`` (oldest first), flushed first."""
    flush_service()
    # Directory names carry the start time to the second only; the last write orders runs that
    # started within one second.
    return sorted(wandb_dir.rglob("offline-run-*/run-*.wandb"), key=lambda p: (p.stat().st_mtime_ns, p))
