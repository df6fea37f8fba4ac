"""The FastAPI app. :func:`create_app` is the one place service configuration enters (resolved by
:func:`clickloop.service.settings.resolve_settings`: argument > environment > default).

The store is opened (and migrated) when the app starts (its lifespan) and closed when it stops, unless
the caller passed an open ``store``. Use ``fastapi.testclient.TestClient(app)`` as a context manager,
or a server, so that the lifespan runs. The dashboard (:mod:`clickloop.service.dashboard`) is mounted
by its ``install(app)``; its pages and the admin routes accept its session cookie (see ``auth.py``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI

from clickloop.service import bodies, dashboard, http_errors
from clickloop.service.metrics import RequestMetrics, ServiceMetrics
from clickloop.service.routes import contexts, ops, serving
from clickloop.service.serving_cache import KeyCache, PoolCache, StatsCache
from clickloop.service.settings import MAX_BODY_BYTES, resolve_settings
from clickloop.service.store import Store, open_store
from clickloop.service.worker import BackendFactory, Worker, default_backend_factory, default_worker_id

WORKER_STOP_GRACE_SECONDS = 10.0
DEFAULT_STORE_URL_FOR_SPEC = "sqlite:///unused.db"  # the spec does not depend on it; nothing is opened


def _version() -> str:
    try:
        return metadata.version("clickloop")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(
    store_url: str | None = None,
    *,
    run_worker: bool | None = None,
    backend_factory: BackendFactory | None = None,
    store: Store | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    worker_poll_seconds: float = 1.0,
    worker_lease_seconds: float = 60.0,
    env: Mapping[str, str] | None = None,
    key_cache_seconds: float | None = None,
) -> FastAPI:
    """The clickloop HTTP API. ``store``: an open store to use instead of opening ``store_url`` (the
    caller keeps closing it). ``backend_factory``: LLM backend id -> backend, for the in-process worker.
    ``key_cache_seconds``: how long a found API key is trusted without a lookup (see ``settings.py``)."""
    settings = resolve_settings(store_url, run_worker, max_body_bytes, env, key_cache_seconds)
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store or open_store(settings.store_url)
        app.state.store = opened
        metrics.watch_store(opened)
        worker, thread = None, None
        if settings.run_worker:
            worker = Worker(
                opened,
                backend_factory or default_backend_factory,
                default_worker_id("-serve"),
                worker_lease_seconds,
                worker_poll_seconds,
                metrics=metrics,
            )
            thread = threading.Thread(target=worker.run_forever, name="clickloop-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker is not None and thread is not None:
                worker.stop()
                thread.join(WORKER_STOP_GRACE_SECONDS)
            metrics.unwatch_store()
            if store is None:
                opened.close()

    app = FastAPI(
        title="clickloop",
        version=_version(),
        summary="Suggested items that get better from clicks (Generative Explore-Exploit).",
        description=(
            "Client keys: suggestions and events. Admin keys: everything else. Send `Authorization: Bearer "
            '<secret>`. Errors: `{"error": {"type", "message", "field"}}`. Item text is data written '
            "by an LLM: render it as plain text."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.pool_cache = PoolCache()
    app.state.stats_cache = StatsCache()
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    if store is not None:
        app.state.store = store
    http_errors.install(app)
    app.include_router(serving.router)
    app.include_router(contexts.router)
    app.include_router(ops.router)
    dashboard.install(app)
    app.add_middleware(http_errors.BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)

    def openapi() -> dict[str, Any]:
        # the body models of routes that read their body after the key check (bodies.py)
        if app.openapi_schema is None:
            app.openapi_schema = bodies.add_component_schemas(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` (``clickloop serve --workers N``): settings from the environment."""
    return create_app()


def openapi_document() -> str:
    """The OpenAPI spec as committed in ``docs/openapi.json`` (``clickloop openapi`` prints it)."""
    spec = create_app(store_url=DEFAULT_STORE_URL_FOR_SPEC, run_worker=False, env={}).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
