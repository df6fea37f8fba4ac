"""What a request handler needs from its app: the store, the metrics and the serving caches (set by
``create_app``). They are ``async`` so that FastAPI resolves them on the event loop instead of handing
each one to its thread pool (a sync dependency costs a thread switch per request)."""

from __future__ import annotations

from fastapi import Request

from clickloop.service.metrics import ServiceMetrics
from clickloop.service.serving_cache import KeyCache, PoolCache
from clickloop.service.store import Store


async def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def get_pool_cache(request: Request) -> PoolCache:
    return request.app.state.pool_cache  # type: ignore[no-any-return]


def key_cache(request: Request) -> KeyCache | None:
    """The app's API-key cache (None for an app that was not made by ``create_app``)."""
    return getattr(request.app.state, "key_cache", None)
