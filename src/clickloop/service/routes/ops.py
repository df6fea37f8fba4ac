"""Health and metrics, without a key (``/metrics`` holds counts only; keep the port private or scrape
through a proxy if even those are sensitive)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from clickloop.service.deps import get_metrics, get_store
from clickloop.service.metrics import ServiceMetrics
from clickloop.service.schemas import Health, error_responses
from clickloop.service.store import Store

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=error_responses(503))
def healthz(store: Store = Depends(get_store)) -> Health:
    """200 when the store answers (with its schema version), 503 when it does not."""
    migrations = store.applied_migrations()
    return Health(status="ok", schema_version=migrations[-1][0] if migrations else 0)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(service_metrics: ServiceMetrics = Depends(get_metrics)) -> Response:
    """Prometheus text format: this process's counters and the store's totals."""
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
