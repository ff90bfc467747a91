"""Archiving expired executions before retention deletes them (docs/retention.md): JSON
lines in a directory, one file per day (``YYYY-MM-DD.jsonl``, the UTC day of archiving),
one line per execution — the execution, its nodes, logs, spans, events and the names of
its artifacts (their bytes are not kept) — and reading one back by id.

An execution archived twice (archived, then kept because a running parent turned out to
need it, then archived again) has two lines: reading back takes the newest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from spane_py.stores.base import ExecutionStore

__all__ = ["Archive"]

_JSON_TEXT = ("initial_data", "output", "wait")  # JSON text kept as JSON values


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: (
                _parsed(getattr(value, f.name))
                if f.name in _JSON_TEXT
                else _plain(getattr(value, f.name))
            )
            for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _parsed(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


class Archive:
    """Expired executions as JSON lines under ``directory`` (created when first written)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    async def write(
        self, store: ExecutionStore, execution_ids: Sequence[str], now: datetime
    ) -> int:
        """Append the executions (those still stored) to today's file, flushed to disk
        before this returns; how many were written."""
        lines = []
        for eid in execution_ids:
            snapshot = await store.get_snapshot(eid)
            if snapshot is None:
                continue
            entry = {
                "archived_at": now.isoformat(),
                "execution": _plain(snapshot.execution),
                "nodes": [_plain(n) for _, n in sorted(snapshot.nodes.items())],
                "logs": _plain(await store.get_logs(eid)),
                "spans": _plain(await store.get_spans(eid)),
                "events": _plain(await store.get_events(execution_id=eid, limit=100_000)),
                "artifacts": _plain(await store.list_artifacts(eid)),
            }
            lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        if lines:
            await asyncio.to_thread(self._append, now.strftime("%Y-%m-%d"), lines)
        return len(lines)

    def _append(self, day: str, lines: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{day}.jsonl", "a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())

    async def read(self, execution_id: str) -> dict[str, Any] | None:
        """The archived execution (the newest line of it), or None."""
        return await asyncio.to_thread(self._read, execution_id)

    def _read(self, execution_id: str) -> dict[str, Any] | None:
        if not self.directory.is_dir():
            return None
        needle = f'"execution_id":"{execution_id}"'
        for path in sorted(self.directory.glob("*.jsonl"), reverse=True):  # newest day first
            found = None
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    if needle in line:
                        entry = json.loads(line)
                        if entry["execution"]["execution_id"] == execution_id:
                            found = entry
            if found is not None:
                return dict(found)
        return None
