"""Run-folder IO: atomic JSON writes and (de)serialisation of a context's state.

An iteration file is written to a temporary name and renamed into place, so a crash never leaves a
half-written iteration that a resumed run would read as complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from clickloop.core.items import Item, ItemRecord, ItemStats
from clickloop.core.pool import Context, ContextState
from clickloop.errors import StorageError


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, ensure_ascii=False, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as exc:
        raise StorageError(f"cannot read {path}: {exc}; delete it to recompute that step") from exc


def state_to_json(state: ContextState) -> dict[str, Any]:
    return {
        "context": {
            "context_id": state.context.context_id,
            "domain": state.context.domain,
            "topic": state.context.topic,
        },
        "iteration": state.iteration,
        "pool": list(state.pool),
        "history": [
            {
                "item": record.item.to_json(),
                "stats": [record.stats.impressions, record.stats.clicks],
                "total": [record.total.impressions, record.total.clicks],
                "ctr_override": record.ctr_override,
                "dropped_at": record.dropped_at,
            }
            for record in state.history.values()
        ],
    }


def state_from_json(data: dict[str, Any]) -> ContextState:
    history = {}
    for row in data["history"]:
        item = Item.from_json(row["item"])
        history[item.item_id] = ItemRecord(
            item, ItemStats(*row["stats"]), ItemStats(*row["total"]), row.get("ctr_override"), row.get("dropped_at")
        )
    return ContextState(Context(**data["context"]), tuple(data["pool"]), history, int(data["iteration"]))
