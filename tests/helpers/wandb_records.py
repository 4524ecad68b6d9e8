"""Reading an offline wandb run back: the `.wandb` file is a 7-byte header (`:W&B`, magic,
version) followed by the LevelDB log format (32 KiB blocks of records with a 7-byte header:
crc32, length, type 1 full / 2 first / 3 middle / 4 last); each assembled payload is a
`wandb_internal_pb2.Record`.

Parsed here by hand because the installed wandb (0.31.0) ships no Python reader any more:
`wandb.sdk.internal.datastore` (`DataStore.open_for_scan` / `scan_data`) left with the Python
internal process, and the Go `wandb-core` binary writes the file now. Should a wandb that has it
come back, `records` is what `DataStore.scan_data` does, and can be replaced by it."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path, wait: float = 30.0) -> list:
    """The file's records, once wandb-core has written its last (`exit`): its process may still
    be writing the final history rows after `wandb.finish()` has returned in the run's process
    (seen under load: the last validation's images were missing, and there a minute later).
    After `wait` seconds, what the file holds (a run that was killed writes no exit)."""
    deadline = time.monotonic() + wait
    while True:
        parsed = _read(path)
        ended = bool(parsed) and parsed[-1].WhichOneof("record_type") == "exit"
        if ended or time.monotonic() > deadline:
            return parsed
        time.sleep(0.2)


def _read(path: Path) -> list:
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    payloads, chunk, pos = [], b"", 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        body = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            payloads.append(body)
        elif kind == FIRST:
            chunk = body
        elif kind == MIDDLE:
            chunk += body
        elif kind == LAST:
            payloads.append(chunk + body)
        elif kind == 0 and length == 0:
            continue
    parsed = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        parsed.append(record)
    return parsed


def history(path: Path) -> list[dict]:
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def run_info(path: Path) -> dict:
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            config = {item.key: json.loads(item.value_json) for item in run.config.update}
            return {
                "id": run.run_id,
                "name": run.display_name,
                "group": run.run_group,
                "tags": list(run.tags),
                "project": run.project,
                "config": config,
            }
    raise AssertionError("no run record")


def summary(path: Path) -> dict:
    values: dict = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def environment(path: Path) -> dict:
    """The run's metadata as wandb records it (program, args, host, ...), records merged."""
    from google.protobuf.json_format import MessageToDict

    values: dict = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "environment":
            values.update(MessageToDict(record.environment, preserving_proto_field_name=True))
    return values
