"""What a request handler needs from its app: the store, the metrics and the serving caches (set by
``create_app``), and :func:`call_store`.

The dependencies are ``async`` so that FastAPI resolves them on the event loop: it runs a sync
dependency in its thread pool, a thread switch per dependency per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from clickloop.service.metrics import ServiceMetrics
from clickloop.service.serving_cache import KeyCache, PoolCache, StatsCache
from clickloop.service.store import Store

T = TypeVar("T")


async def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def pool_cache(request: Request) -> PoolCache:
    return request.app.state.pool_cache  # type: ignore[no-any-return]


def stats_cache(request: Request) -> StatsCache:
    return request.app.state.stats_cache  # type: ignore[no-any-return]


def key_cache(request: Request) -> KeyCache | None:
    """The app's API-key cache (None for an app that was not made by ``create_app``)."""
    return getattr(request.app.state, "key_cache", None)


async def call_store(store: Store, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``, which calls ``store``: on the event loop when the store's calls are short local
    work (SQLite: tens of microseconds, less than a thread switch), else in the thread pool, so that
    network round trips (PostgreSQL) do not hold up the other requests of this process."""
    if getattr(store, "runs_inline", False):
        return fn(*args)
    return await run_in_threadpool(fn, *args)
