"""Contexts: create, update, read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clickloop.errors import ConflictError, NotFoundError, ValidationError
from clickloop.service.store.base import ContextRow, IterationFailure, Schedule, check_slug
from clickloop.service.store.tx import Row, Tx, dump_json, load_json

COLUMNS = (
    "context_id, config, created_at, updated_at, iteration, last_iteration_at, impressions_since_iteration, "
    "impressions_total, iteration_requested_at, leased_by, lease_until, last_error, last_error_at, iteration_failures, "
    "(SELECT COUNT(*) FROM pool_items p WHERE p.context_id = contexts.context_id AND p.iteration = contexts.iteration)"
)


def not_found(context_id: str) -> NotFoundError:
    return NotFoundError(f"no context {context_id!r}; create it first or check the id", field="context_id")


def to_row(row: Row) -> ContextRow:
    message, failed_at, failures = row[11:14]
    failure = None if message is None else IterationFailure(str(message), float(failed_at), int(failures))
    return ContextRow(
        context_id=row[0],
        config=load_json(row[1]),
        created_at=row[2],
        updated_at=row[3],
        iteration=row[4],
        last_iteration_at=row[5],
        impressions_since_iteration=row[6],
        impressions_total=row[7],
        iteration_requested_at=row[8],
        leased_by=row[9],
        lease_until=row[10],
        live_pool_size=int(row[14]),
        last_error=failure,
    )


def _checked(config: Mapping[str, Any]) -> tuple[str, Schedule]:
    if not isinstance(config, Mapping):
        raise ValidationError(f"config must be a JSON object, got {type(config).__name__}")
    try:
        text = dump_json(dict(config))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"config must be JSON-serialisable: {exc}") from exc
    return text, Schedule.from_config(config)


def create(tx: Tx, context_id: str, config: Mapping[str, Any], now: float) -> ContextRow:
    check_slug("context_id", context_id)
    text, schedule = _checked(config)
    inserted = tx.run(
        "INSERT INTO contexts (context_id, config, every_n_impressions, every_seconds, min_impressions_per_item, "
        "impressions_gate, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (context_id) DO NOTHING",
        (context_id, text, *_schedule_columns(schedule), now, now),
    )
    if not inserted:
        raise ConflictError(f"context_id {context_id!r} already exists; update it or choose another id")
    return get(tx, context_id)


def update(tx: Tx, context_id: str, config: Mapping[str, Any], now: float) -> ContextRow:
    text, schedule = _checked(config)
    changed = tx.run(
        # a back-off after failed iterations (lease_until with no worker) ends: the new config may fix the cause
        "UPDATE contexts SET config = ?, every_n_impressions = ?, every_seconds = ?, min_impressions_per_item = ?, "
        "impressions_gate = ?, updated_at = ?, "
        "lease_until = CASE WHEN leased_by IS NULL THEN NULL ELSE lease_until END WHERE context_id = ?",
        (text, *_schedule_columns(schedule), now, context_id),
    )
    if not changed:
        raise not_found(context_id)
    return get(tx, context_id)


def _schedule_columns(schedule: Schedule) -> tuple[int, float, int, str]:
    gate = "mean" if schedule.gate_on_mean else "every"
    return schedule.every_n_impressions, schedule.every_minutes * 60.0, schedule.min_impressions_per_item, gate


def get(tx: Tx, context_id: str, *, lock: bool = False) -> ContextRow:
    """The context; with ``lock``, its row stays locked until the transaction ends."""
    suffix = tx.dialect.lock_row if lock else ""
    row = tx.row(f"SELECT {COLUMNS} FROM contexts WHERE context_id = ?{suffix}", (context_id,))
    if row is None:
        raise not_found(context_id)
    return to_row(row)


def check_exists(tx: Tx, context_id: str) -> None:
    """NotFoundError unless the context exists (cheaper than :func:`get`: no JSON parsed)."""
    if tx.value("SELECT 1 FROM contexts WHERE context_id = ?", (context_id,)) is None:
        raise not_found(context_id)


def list_all(tx: Tx) -> list[ContextRow]:
    return [to_row(row) for row in tx.rows(f"SELECT {COLUMNS} FROM contexts ORDER BY context_id")]
