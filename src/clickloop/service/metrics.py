"""Prometheus metrics of one service process, served at ``GET /metrics`` (no key needed: it holds
counts only, never item text or ids).

Counters of this process (requests, latency, events, impressions, clicks, iterations of its in-process
worker) and, read from the store at each scrape, totals over every process (``clickloop_store_*``).
A separate ``clickloop worker`` process counts its iterations in its own memory: read them from the
store totals or the context history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickloop.errors import ClickloopError
from clickloop.service.store import Store

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    """The metrics of one app, in their own registry (so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clickloop_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clickloop_http_request_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter("clickloop_events", "Click events by outcome.", ["outcome"], registry=self.registry)
        self.impressions = Counter("clickloop_impressions", "Impressions served.", registry=self.registry)
        self.clicks = Counter("clickloop_clicks", "Clicks accepted.", registry=self.registry)
        self.iterations = Counter(
            "clickloop_iterations",
            "Iterations run by this process's worker: applied, failed, conflict (another worker won), interrupted.",
            ["outcome"],
            registry=self.registry,
        )
        self._store_collector: StoreCollector | None = None

    def watch_store(self, store: Store) -> None:
        """Report the store's totals at each scrape (from the app's start to :meth:`unwatch_store`)."""
        self.unwatch_store()
        self._store_collector = StoreCollector(store)
        self.registry.register(self._store_collector)

    def unwatch_store(self) -> None:
        collector, self._store_collector = self._store_collector, None
        if collector is not None:
            self.registry.unregister(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Totals read from the store when Prometheus scrapes; ``clickloop_store_up`` 0 if it failed."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            totals = self.store.metrics()
        except ClickloopError:
            yield GaugeMetricFamily("clickloop_store_up", "Whether the store answered.", value=0)
            return
        yield GaugeMetricFamily("clickloop_store_up", "Whether the store answered.", value=1)
        yield GaugeMetricFamily("clickloop_store_contexts", "Contexts in the store.", value=totals.contexts)
        yield GaugeMetricFamily(
            "clickloop_store_pending_items", "Items waiting for review.", value=totals.pending_items
        )
        yield CounterMetricFamily("clickloop_store_impressions", "Impressions stored.", value=totals.impressions)
        yield CounterMetricFamily("clickloop_store_clicks", "Clicks stored.", value=totals.clicks)
        outcomes = CounterMetricFamily(
            "clickloop_store_events", "Events by outcome, all processes.", labels=["outcome"]
        )
        for outcome, n in sorted(totals.event_outcomes.items()):
            outcomes.add_metric([outcome], n)
        yield outcomes


class RequestMetrics:
    """ASGI middleware: count and time each HTTP request under its route template (``/v1/contexts/{context_id}``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
