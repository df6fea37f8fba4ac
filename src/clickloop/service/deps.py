"""What a request handler needs from its app: the store and the metrics (set by ``create_app``'s lifespan)."""

from __future__ import annotations

from fastapi import Request

from clickloop.service.metrics import ServiceMetrics
from clickloop.service.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]
