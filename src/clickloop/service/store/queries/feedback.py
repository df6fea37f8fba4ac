"""Serving and feedback: impressions and click events, each call one short transaction."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from clickloop.errors import ValidationError, require
from clickloop.service.store.base import (
    MAX_KEY_CHARS,
    TOKEN,
    EventIn,
    EventOutcome,
    EventStatus,
    ImpressionRow,
    RejectReason,
)
from clickloop.service.store.queries import contexts
from clickloop.service.store.tx import Row, Tx, dump_json, load_json, marks

MAX_BATCH_EVENTS = 1000
IMPRESSION_COLUMNS = "impression_id, context_id, iteration, item_ids, created_at, expires_at"


def _check_impression(impression_id: str, iteration: int, item_ids: Sequence[str], ttl_seconds: float) -> None:
    if not isinstance(impression_id, str) or not TOKEN.fullmatch(impression_id):
        raise ValidationError(
            f"impression_id ({impression_id!r}) must be 16-128 URL-safe characters; "
            "make it with secrets.token_urlsafe(16)"
        )
    require(isinstance(iteration, int) and iteration >= 0, f"iteration ({iteration!r}) must be an integer >= 0")
    require(
        bool(item_ids) and all(isinstance(i, str) and i for i in item_ids),
        f"item_ids ({item_ids!r}) must be a non-empty list of item ids",
    )
    require(len(set(item_ids)) == len(item_ids), f"item_ids ({list(item_ids)}) must not repeat an item")
    require(
        isinstance(ttl_seconds, int | float) and math.isfinite(ttl_seconds) and ttl_seconds > 0,
        f"ttl_seconds ({ttl_seconds!r}) must be a finite number > 0",
    )


def record_impression(
    tx: Tx,
    context_id: str,
    iteration: int,
    impression_id: str,
    item_ids: Sequence[str],
    ttl_seconds: float,
    now: float,
) -> ImpressionRow:
    _check_impression(impression_id, iteration, item_ids, ttl_seconds)
    ids = tuple(item_ids)
    impression = ImpressionRow(impression_id, context_id, iteration, ids, now, now + ttl_seconds)
    changed = tx.run(
        "UPDATE contexts SET impressions_total = impressions_total + 1, "
        "impressions_since_iteration = impressions_since_iteration + CASE WHEN iteration = ? THEN 1 ELSE 0 END "
        "WHERE context_id = ?",
        (iteration, context_id),
    )
    if not changed:
        raise contexts.not_found(context_id)
    counted = tx.run(
        f"UPDATE pool_items SET impressions = impressions + 1 "
        f"WHERE context_id = ? AND iteration = ? AND item_id IN ({marks(ids)})",
        (context_id, iteration, *ids),
    )
    if counted != len(ids):
        raise ValidationError(
            f"item_ids {list(ids)} are not all in pool IP_{iteration} of context {context_id!r}; "
            "serve items of the live pool"
        )
    inserted = tx.run(
        f"INSERT INTO impressions ({IMPRESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (impression_id) DO NOTHING",
        (impression_id, context_id, iteration, dump_json(list(ids)), now, impression.expires_at),
    )
    if not inserted:
        raise ValidationError(f"impression_id {impression_id!r} is already used; make a fresh one for every impression")
    return impression


def _to_impression(row: Row) -> ImpressionRow:
    return ImpressionRow(row[0], row[1], int(row[2]), tuple(load_json(row[3])), float(row[4]), float(row[5]))


def _check_batch(events: Sequence[EventIn], client_id: str) -> None:
    require(isinstance(client_id, str) and len(client_id) <= MAX_KEY_CHARS, f"client_id ({client_id!r}) is invalid")
    require(
        len(events) <= MAX_BATCH_EVENTS,
        f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(events)}; split it",
    )
    first_index: dict[str, int] = {}
    for index, event in enumerate(events):
        if not isinstance(event, EventIn):
            raise ValidationError(f"events[{index}] must be an EventIn, got {type(event).__name__}")
        key = event.idempotency_key
        if key in first_index:
            raise ValidationError(
                f"events.{index}.idempotency_key ({key!r}) repeats the key of events.{first_index[key]}; "
                "give every event of a batch its own key (a retry resends the same batch). Nothing was stored",
                field=f"events.{index}.idempotency_key",
            )
        first_index[key] = index


def _check_shown(
    events: Sequence[EventIn], seen: set[str], impressions: dict[str, ImpressionRow], context_id: str, now: float
) -> None:
    """ValidationError for the first new event that clicks an item its known, unexpired impression did
    not show: a client bug (a stale or made-up item id), unlike an expired impression, which is a race."""
    for index, event in enumerate(events):
        impression = impressions.get(event.impression_id)
        if (
            event.idempotency_key in seen
            or impression is None
            or impression.context_id != context_id
            or impression.expires_at <= now
            or event.item_id in impression.item_ids
        ):
            continue
        raise ValidationError(
            f"events.{index}.item_id ({event.item_id!r}) was not shown in impression {event.impression_id!r}, "
            f"which showed {list(impression.item_ids)}; send clicks only on the items of that suggestions "
            "response. Nothing was stored",
            field=f"events.{index}.item_id",
        )


def _outcome(
    tx: Tx,
    event: EventIn,
    impression: ImpressionRow | None,
    seen: set[str],
    context_id: str,
    client_id: str,
    now: float,
) -> EventOutcome:
    key = event.idempotency_key
    if key in seen:
        return EventOutcome(key, EventStatus.DUPLICATE)
    if impression is None or impression.context_id != context_id:
        return EventOutcome(key, EventStatus.REJECTED, RejectReason.UNKNOWN_IMPRESSION)
    if impression.expires_at <= now:
        return EventOutcome(key, EventStatus.REJECTED, RejectReason.EXPIRED_IMPRESSION)
    accepted = _insert_event(tx, client_id, event, impression, now)
    return EventOutcome(key, EventStatus.ACCEPTED if accepted else EventStatus.DUPLICATE)


def _insert_event(tx: Tx, client_id: str, event: EventIn, impression: ImpressionRow, now: float) -> bool:
    """Store an accepted click; False if its key or its (impression, item) pair is already stored."""
    return bool(
        tx.run(
            "INSERT INTO events (client_id, idempotency_key, context_id, impression_id, item_id, iteration, "
            "dwell_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                client_id,
                event.idempotency_key,
                impression.context_id,
                event.impression_id,
                event.item_id,
                impression.iteration,
                event.dwell_ms,
                now,
            ),
        )
    )


def _lookups(tx: Tx, events: Sequence[EventIn], client_id: str) -> tuple[set[str], dict[str, ImpressionRow]]:
    keys = sorted({e.idempotency_key for e in events})
    seen = {
        str(row[0])
        for row in tx.rows(
            f"SELECT idempotency_key FROM events WHERE client_id = ? AND idempotency_key IN ({marks(keys)})",
            (client_id, *keys),
        )
    }
    impression_ids = sorted({e.impression_id for e in events})
    rows = tx.rows(
        f"SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE impression_id IN ({marks(impression_ids)})",
        impression_ids,
    )
    return seen, {row[0]: _to_impression(row) for row in rows}


def record_events(tx: Tx, context_id: str, events: Sequence[EventIn], client_id: str, now: float) -> list[EventOutcome]:
    _check_batch(events, client_id)
    contexts.check_exists(tx, context_id)
    if not events:
        return []
    seen, impressions = _lookups(tx, events, client_id)
    _check_shown(events, seen, impressions, context_id, now)  # before any write
    outcomes = []
    clicks: Counter[tuple[int, str]] = Counter()
    for event in events:
        outcome = _outcome(tx, event, impressions.get(event.impression_id), seen, context_id, client_id, now)
        if outcome.status is EventStatus.ACCEPTED:
            clicks[(impressions[event.impression_id].iteration, event.item_id)] += 1
        outcomes.append(outcome)
    _count(tx, context_id, clicks, Counter(o.label for o in outcomes))
    return outcomes


def _count(tx: Tx, context_id: str, clicks: Counter[tuple[int, str]], outcomes: Counter[str]) -> None:
    # sorted, so that concurrent batches lock counter rows in one order (no deadlocks on PostgreSQL)
    tx.many(
        "UPDATE pool_items SET clicks = clicks + ? WHERE context_id = ? AND iteration = ? AND item_id = ?",
        [(n, context_id, iteration, item_id) for (iteration, item_id), n in sorted(clicks.items())],
    )
    tx.many(
        "INSERT INTO event_counts (context_id, outcome, n) VALUES (?, ?, ?) "
        "ON CONFLICT (context_id, outcome) DO UPDATE SET n = event_counts.n + excluded.n",
        [(context_id, label, n) for label, n in sorted(outcomes.items())],
    )


def purge_impressions(tx: Tx, expired_before: float) -> int:
    return tx.run("DELETE FROM impressions WHERE expires_at < ?", (expired_before,))
