"""Iterations: which context is due, worker leases, applying a new pool, and the review queue.

A lease is two columns of the context row (``leased_by``, ``lease_until``) written in a transaction
that holds the row: SQLite's ``BEGIN IMMEDIATE`` takes the database write lock, PostgreSQL's
``FOR UPDATE SKIP LOCKED`` the row lock, so two workers never lease the same context. Applying an
iteration checks ``expected_iteration`` under the same lock, so a worker whose lease ran out and was
overtaken fails instead of applying twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from clickloop.core.items import Item
from clickloop.errors import ConflictError, NotFoundError, ValidationError, require
from clickloop.service.store.base import MAX_ERROR_CHARS, ContextRow, ItemStatus
from clickloop.service.store.queries import contexts
from clickloop.service.store.tx import Tx, dump_json, marks

DUE = """
    (c.lease_until IS NULL OR c.lease_until <= ?)
    AND (c.iteration IS NULL
         OR c.iteration_requested_at IS NOT NULL
         OR (((c.every_n_impressions > 0 AND c.impressions_since_iteration >= c.every_n_impressions)
              OR (c.every_seconds > 0 AND c.last_iteration_at + c.every_seconds <= ?))
             AND ((c.impressions_gate = 'every'
                   AND NOT EXISTS (SELECT 1 FROM pool_items p
                                   WHERE p.context_id = c.context_id AND p.iteration = c.iteration
                                     AND p.impressions < c.min_impressions_per_item))
                  OR (c.impressions_gate = 'mean'
                      AND (SELECT COALESCE(AVG(p.impressions), 0) FROM pool_items p
                           WHERE p.context_id = c.context_id AND p.iteration = c.iteration)
                          >= c.min_impressions_per_item))
             AND NOT EXISTS (SELECT 1 FROM items i WHERE i.context_id = c.context_id AND i.status = 'pending')))
"""


def _check_worker(worker_id: str, seconds: float, name: str) -> None:
    require(isinstance(worker_id, str) and 0 < len(worker_id) <= 200, f"worker_id ({worker_id!r}) must be 1-200 chars")
    require(
        isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0,
        f"{name} ({seconds!r}) must be a finite number >= 0",
    )


def request(tx: Tx, context_id: str, now: float, initial_only: bool = False) -> None:
    # ``initial_only``: a suggestion that found no pool asks for IP_0; if a worker applied it since
    # that read, the request must not make the context due again (it would drop unseen items)
    condition = " AND iteration IS NULL" if initial_only else ""
    changed = tx.run(
        "UPDATE contexts SET iteration_requested_at = COALESCE(iteration_requested_at, ?) "
        f"WHERE context_id = ?{condition}",
        (now, context_id),
    )
    exists = changed or (initial_only and tx.value("SELECT 1 FROM contexts WHERE context_id = ?", (context_id,)))
    if not exists:
        raise contexts.not_found(context_id)


def claim(tx: Tx, worker_id: str, lease_seconds: float, now: float) -> ContextRow | None:
    _check_worker(worker_id, lease_seconds, "lease_seconds")
    require(lease_seconds > 0, f"lease_seconds ({lease_seconds}) must be > 0")
    context_id = tx.value(
        f"SELECT c.context_id FROM contexts c WHERE {DUE} "
        "ORDER BY COALESCE(c.iteration_requested_at, c.last_iteration_at, c.created_at), c.context_id "
        f"LIMIT 1{tx.dialect.claim}",
        (now, now),
    )
    if context_id is None:
        return None
    tx.run(
        "UPDATE contexts SET leased_by = ?, lease_until = ? WHERE context_id = ?",
        (worker_id, now + lease_seconds, context_id),
    )
    return contexts.get(tx, context_id)


def renew(tx: Tx, context_id: str, worker_id: str, lease_seconds: float, now: float) -> bool:
    _check_worker(worker_id, lease_seconds, "lease_seconds")
    return bool(
        tx.run(
            "UPDATE contexts SET lease_until = ? WHERE context_id = ? AND leased_by = ? AND lease_until > ?",
            (now + lease_seconds, context_id, worker_id, now),
        )
    )


def release(tx: Tx, context_id: str, worker_id: str, hold_seconds: float, now: float) -> None:
    _check_worker(worker_id, hold_seconds, "hold_seconds")
    tx.run(
        "UPDATE contexts SET leased_by = NULL, lease_until = ? WHERE context_id = ? AND leased_by = ?",
        (now + hold_seconds if hold_seconds > 0 else None, context_id, worker_id),
    )


def _pool_ids(tx: Tx, context_id: str, iteration: int | None) -> list[str]:
    if iteration is None:
        return []
    rows = tx.rows(
        "SELECT item_id FROM pool_items WHERE context_id = ? AND iteration = ? ORDER BY position",
        (context_id, iteration),
    )
    return [str(row[0]) for row in rows]


def _check_apply(expected: int | None, new_items: Sequence[Item], dropped: Sequence[str], pool: list[str]) -> None:
    require(
        expected is None or (isinstance(expected, int) and expected >= 0),
        f"expected_iteration ({expected!r}) must be None (no pool yet) or an integer >= 0",
    )
    for index, item in enumerate(new_items):
        if not isinstance(item, Item):
            raise ValidationError(f"new_items[{index}] must be an Item, got {type(item).__name__}")
    new_ids = [item.item_id for item in new_items]
    require(len(set(new_ids)) == len(new_ids), f"new_items repeat an item id: {new_ids}")
    require(len(set(dropped)) == len(dropped), f"dropped_item_ids repeat an id: {list(dropped)}")
    not_live = [i for i in dropped if i not in pool]
    require(not not_live, f"cannot drop {not_live}: not in the live pool {pool}")


def _insert_items(
    tx: Tx, context_id: str, items: Sequence[Item], status: ItemStatus, iteration: int, now: float
) -> None:
    ids = [item.item_id for item in items]
    if ids:
        known = tx.rows(
            f"SELECT item_id FROM items WHERE context_id = ? AND item_id IN ({marks(ids)})", (context_id, *ids)
        )
        require(not known, f"items {sorted(r[0] for r in known)} are already in context {context_id!r}")
    tx.many(
        "INSERT INTO items (context_id, item_id, text, provenance, status, iteration_created, ordinal, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (context_id, item.item_id, item.text, dump_json(item.provenance.to_json()), status.value, iteration, k, now)
            for k, item in enumerate(items)
        ],
    )


def apply(
    tx: Tx,
    context_id: str,
    expected: int | None,
    new_items: Sequence[Item],
    dropped: Sequence[str],
    pending: bool,
    now: float,
) -> ContextRow:
    current = contexts.get(tx, context_id, lock=True)
    if current.iteration != expected:
        raise ConflictError(
            f"context {context_id!r} is at iteration {current.iteration}, not the expected {expected}: another "
            "worker applied an iteration first. Nothing was changed; reload the context and compute again"
        )
    pool = _pool_ids(tx, context_id, expected)
    _check_apply(expected, new_items, dropped, pool)
    iteration = 0 if expected is None else expected + 1
    _insert_items(tx, context_id, new_items, ItemStatus.PENDING if pending else ItemStatus.LIVE, iteration, now)
    if dropped:
        tx.run(
            f"UPDATE items SET status = ?, dropped_at = ? WHERE context_id = ? AND item_id IN ({marks(dropped)})",
            (ItemStatus.DROPPED.value, expected, context_id, *dropped),
        )
    tx.run("INSERT INTO iterations (context_id, iteration, created_at) VALUES (?, ?, ?)", (context_id, iteration, now))
    next_pool = [i for i in pool if i not in dropped] + ([] if pending else [item.item_id for item in new_items])
    _add_to_pool(tx, context_id, iteration, next_pool, start=0)
    tx.run(
        "UPDATE contexts SET iteration = ?, last_iteration_at = ?, impressions_since_iteration = 0, "
        "iteration_requested_at = NULL, last_error = NULL, last_error_at = NULL, iteration_failures = 0 "
        "WHERE context_id = ?",
        (iteration, now, context_id),
    )
    return contexts.get(tx, context_id)


def record_failure(tx: Tx, context_id: str, message: str, now: float) -> int:
    if not isinstance(message, str) or not message.strip():
        raise ValidationError(f"message ({message!r}) must be a non-empty string: the error the iteration failed with")
    text = message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
    # every row fetched: a SQLite statement with rows left unread would still be running at COMMIT
    rows = tx.rows(
        "UPDATE contexts SET last_error = ?, last_error_at = ?, iteration_failures = iteration_failures + 1 "
        "WHERE context_id = ? RETURNING iteration_failures",
        (text, now, context_id),
    )
    if not rows:
        raise contexts.not_found(context_id)
    return int(rows[0][0])


def _add_to_pool(tx: Tx, context_id: str, iteration: int, item_ids: Sequence[str], start: int) -> None:
    tx.many(
        "INSERT INTO pool_items (context_id, iteration, item_id, position) VALUES (?, ?, ?, ?)",
        [(context_id, iteration, item_id, start + k) for k, item_id in enumerate(item_ids)],
    )


def review(tx: Tx, context_id: str, item_ids: Sequence[str], approve: bool) -> None:
    """Approve (live, appended to the current pool) or reject pending items."""
    current = contexts.get(tx, context_id, lock=True)
    ids = list(item_ids)
    require(bool(ids) and len(set(ids)) == len(ids), f"item_ids ({ids}) must be a non-empty list without repeats")
    rows = tx.rows(
        f"SELECT item_id, status FROM items WHERE context_id = ? AND item_id IN ({marks(ids)})", (context_id, *ids)
    )
    found = {str(item_id): str(status) for item_id, status in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"no items {missing} in context {context_id!r}", field="item_ids")
    not_pending = {i: s for i, s in found.items() if s != ItemStatus.PENDING}
    require(not not_pending, f"items {not_pending} are not pending review; only pending items can be reviewed")
    status = ItemStatus.LIVE if approve else ItemStatus.REJECTED
    tx.run(
        f"UPDATE items SET status = ? WHERE context_id = ? AND item_id IN ({marks(ids)})",
        (status.value, context_id, *ids),
    )
    if approve and current.iteration is not None:
        start = tx.value(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM pool_items WHERE context_id = ? AND iteration = ?",
            (context_id, current.iteration),
        )
        _add_to_pool(tx, context_id, current.iteration, ids, start=int(start))
