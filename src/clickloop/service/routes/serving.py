"""What product pages call, with a client key: suggestions for a context, and click events on them.

These two routes are the hot path. A suggestion costs one read of the context row, the live pool from
the app's :class:`~clickloop.service.serving_cache.PoolCache` (read only when the pool changed), and the
write of the impression; an event batch costs one write. The store work of a request is one call of
:func:`~clickloop.service.deps.call_store` (on the event loop for SQLite, in a thread for PostgreSQL),
and the answer is JSON written here in the shape of the route's ``response_model`` (the OpenAPI spec),
without validating it a second time. The event batch is read after the key and its scope are checked
(:mod:`clickloop.service.bodies`).
"""

from __future__ import annotations

import json
import random
import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from clickloop.core.posterior import thompson_top_k
from clickloop.errors import NotReadyError
from clickloop.service import bodies
from clickloop.service.auth import require_client
from clickloop.service.deps import call_store, pool_cache, stats_cache
from clickloop.service.metrics import ServiceMetrics
from clickloop.service.schemas import ErrorResponse, EventBatch, EventBatchResult, Suggestions, error_responses
from clickloop.service.serving_cache import PoolCache, StatsCache
from clickloop.service.store import ApiKeyRole, ApiKeyRow, ContextRow, EventIn, EventOutcome, EventStatus, Store

router = APIRouter(prefix="/v1", tags=["serving"], responses=error_responses(401, 403, 404, 422, 503))
# which items are shown needs no secrecy, only uniformity; impression ids come from ``secrets``
_pick = random.Random()


@router.get(
    "/contexts/{context_id}/suggestions",
    response_model=Suggestions,
)
async def suggestions(context_id: str, request: Request, key: ApiKeyRow = Depends(require_client)) -> Response:
    """``k_shown`` items of the live pool, recorded as one impression: drawn uniformly at random, or
    with the context's ``serving: thompson``, the ``k_shown`` highest of one draw from each item's Beta
    posterior of CTR (Thompson sampling).

    Before the first pool: 503 ``pool_not_ready`` with ``Retry-After``, and the pool is asked for; when
    generating it failed, the message says so, and to an admin key why (the context's ``last_error``,
    which may name server paths; a client key is not shown it).
    """
    store: Store = request.app.state.store
    admin = key.role is ApiKeyRole.ADMIN
    body = await call_store(store, _suggest, store, pool_cache(request), stats_cache(request), context_id, admin)
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.impressions.inc()
    return _json(body)


def _suggest(store: Store, pools: PoolCache, stats: StatsCache, context_id: str, admin: bool = False) -> dict[str, Any]:
    context = store.get_context(context_id)
    if context.iteration is None:
        store.request_iteration(context_id, initial_only=True)
        raise NotReadyError(_no_pool_yet(context, admin), code="pool_not_ready")
    pool = pools.live_pool(store, context)
    if not pool.items:
        raise NotReadyError(
            f"the live pool of {context_id!r} is empty: its items wait for review", 60.0, code="pool_not_ready"
        )
    k = min(int(context.config["k_shown"]), len(pool.items))
    if context.config.get("serving") == "thompson":
        alpha, beta = stats.posteriors(store, context, pool)
        shown = [pool.items[i] for i in thompson_top_k(alpha, beta, k, np.random.default_rng(_pick.getrandbits(64)))[0]]
    else:
        shown = _pick.sample(pool.items, k)
    impression = store.record_impression(
        context_id,
        pool.iteration,
        secrets.token_urlsafe(16),
        [item_id for item_id, _ in shown],
        float(context.config["impression_ttl_seconds"]),
    )
    return {
        "impression_id": impression.impression_id,
        "iteration": impression.iteration,
        "items": [{"item_id": item_id, "text": text} for item_id, text in shown],
    }


def _no_pool_yet(context: ContextRow, admin: bool) -> str:
    context_id = context.context_id
    failure = context.last_error
    if failure is None:
        return f"context {context_id!r} has no pool yet; it is being generated, retry shortly"
    when = datetime.fromtimestamp(failure.failed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    why = f": {failure.message}" if admin else ""
    return (
        f"context {context_id!r} has no pool yet: generating it failed {failure.attempts} time(s) in a row, "
        f"last at {when}{why}. The worker retries with a back-off; an admin can fix the cause "
        f"(e.g. the context's llm) and see the error at GET /v1/contexts/{context_id} (last_error)"
    )


EVENTS_422 = (
    "A field has a wrong type or value (`field` names it), the batch repeats an idempotency key "
    "(`events.N.idempotency_key`) or clicks an item its impression did not show (`events.N.item_id`); "
    "nothing of the batch is stored."
)


@router.post(
    "/contexts/{context_id}/events",
    response_model=EventBatchResult,
    responses={
        **error_responses(400, 413),
        422: {"model": ErrorResponse, "description": EVENTS_422},
    },
    openapi_extra=bodies.request_body(EventBatch),
)
async def events(context_id: str, request: Request, key: ApiKeyRow = Depends(require_client)) -> Response:
    """Record a batch of clicks in one transaction: all of it is stored, or nothing (on any error).

    The key and its scope are checked before the body is read. Each event's outcome: ``accepted``;
    ``duplicate`` (its idempotency key was seen in an earlier batch of this API key, or the item was
    already clicked in that impression); ``rejected:unknown_impression`` or
    ``rejected:expired_impression`` (a normal race: counted, not stored). A client error fails the
    whole batch with 422 and stores nothing: the same idempotency key twice in the batch
    (``field``: ``events.N.idempotency_key``), or a click on an item that its known, unexpired
    impression did not show (``events.N.item_id``).
    """
    batch = await bodies.read_body(request, EventBatch)
    store: Store = request.app.state.store
    batch_in = [EventIn(e.idempotency_key, e.impression_id, e.item_id, e.dwell_ms) for e in batch.events]
    outcomes: list[EventOutcome] = await call_store(store, store.record_events, context_id, batch_in, key.key_id)
    metrics: ServiceMetrics = request.app.state.metrics
    for label, n in Counter(o.label for o in outcomes).items():
        metrics.events.labels(label).inc(n)
    by_status = Counter(o.status for o in outcomes)
    metrics.clicks.inc(by_status[EventStatus.ACCEPTED])
    return _json(
        {
            "results": [{"idempotency_key": o.idempotency_key, "outcome": o.label} for o in outcomes],
            "accepted": by_status[EventStatus.ACCEPTED],
            "duplicate": by_status[EventStatus.DUPLICATE],
            "rejected": by_status[EventStatus.REJECTED],
        }
    )


def _json(body: dict[str, Any]) -> Response:
    """``body`` as a JSON response (item text stays data: JSON escapes it, nothing renders it)."""
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type="application/json")
