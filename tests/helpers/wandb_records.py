"""Read a W&B `.wandb` run file (offline mode) with wandb's own protobuf records."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 32768  # the .wandb file is a LevelDB-style log of wandb's protobuf records


def read_records(path: Path) -> Iterator[Any]:
    """Every record of a `.wandb` file, parsed with wandb's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding up to the block end
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _items(items: Any) -> dict[str, Any]:
    """History / summary / config items as a dict; nested keys (a table's fields) nested."""
    out: dict[str, Any] = {}
    for item in items:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(item.value_json)
    return out


def history(run_file: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(history rows, config, summary) of a run file."""
    rows: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for record in read_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append(_items(record.history.item))
        elif kind == "run":
            config.update(_items(record.run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
    return rows, config, summary


def run_info(run_file: Path) -> dict[str, Any]:
    """Where a run file's run went: project, entity, group, tags, name and notes."""
    for record in read_records(run_file):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            return {
                "project": run.project,
                "entity": run.entity,
                "group": run.run_group,
                "tags": list(run.tags),
                "name": run.display_name,
                "notes": run.notes,
            }
    raise AssertionError(f"{run_file} holds no run record")


def artifacts(run_file: Path) -> list[Any]:
    """The artifact records of a run file (name, type and manifest of each)."""
    return [
        record.artifact
        for record in read_records(run_file)
        if record.WhichOneof("record_type") == "artifact"
    ]
