"""The update worker: claim a due context, run its iteration, release it; repeat until stopped.

Several workers (threads of ``clickloop serve``, ``clickloop worker`` processes, other hosts on
PostgreSQL) may run at once: the store's leases give each due context to one of them, and
``apply_iteration``'s expected-iteration check refuses a second result for the same step. While the
LLM works, a heartbeat renews the lease; if it is lost (or the worker is told to stop) the iteration is
abandoned before the next LLM call, without applying anything. A failed iteration is recorded in the
store (:meth:`Store.record_iteration_failure`: the context's ``last_error``, shown by the API and the
dashboard, and its count of failures in a row, cleared by the next applied iteration) and releases the
context with an exponential back-off on that count (``backoff_seconds`` doubling up to
``max_backoff_seconds``, at least a rate limit's ``retry_after``); its retry samples anew. The count
lives in the store, so back-off and sampling seeds carry over between workers and restarts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from clickloop.errors import ClickloopError, ConflictError, RateLimitError
from clickloop.llm.base import ChatRequest, Completion, LLMBackend
from clickloop.llm.cache import BackendWrapper
from clickloop.service.iteration import run_iteration
from clickloop.service.store import ContextRow, Store

if TYPE_CHECKING:  # the worker runs without the HTTP extras; the app passes its metrics in
    from clickloop.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], LLMBackend]
"""Builds the (unstarted) LLM backend for a backend id such as ``llamacpp`` or ``openai:MODEL``."""


def default_backend_factory(spec: str) -> LLMBackend:
    """The registry's backend; OpenAI-compatible servers get retries for transient errors."""
    from clickloop.llm.registry import make_backend

    backend = make_backend(spec)
    if spec.startswith("openai"):
        from clickloop.llm.retrying import Retrying

        return Retrying(backend)
    return backend


def default_worker_id(suffix: str = "") -> str:
    return f"{socket.gethostname()}-{os.getpid()}{suffix}"[:200]


class LeaseEnded(Exception):
    """Raised inside an iteration when its lease is lost or the worker stops (not an error: no back-off)."""


class _Guarded(BackendWrapper):
    """A backend that refuses to start another LLM call once ``ended()`` returns a reason."""

    def __init__(self, inner: LLMBackend, ended: Callable[[], str | None]) -> None:
        super().__init__(inner)
        self.ended = ended

    def complete(self, request: ChatRequest) -> Completion:
        reason = self.ended()
        if reason:
            raise LeaseEnded(reason)
        return self.inner.complete(request)


class Worker:
    """Runs iterations of due contexts. ``lease_seconds``: how long a claim lasts without renewal (a
    crashed worker's contexts are free again after it); ``poll_seconds``: the wait when nothing is due.
    Backends are built once per backend id and closed by :meth:`close`."""

    def __init__(
        self,
        store: Store,
        backend_factory: BackendFactory = default_backend_factory,
        worker_id: str | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        *,
        backoff_seconds: float = 5.0,
        max_backoff_seconds: float = 600.0,
        purge_every_seconds: float = 3600.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        for name, value in (("lease_seconds", lease_seconds), ("poll_seconds", poll_seconds)):
            if not value > 0:
                raise ValueError(f"{name} ({value!r}) must be > 0")
        self.store = store
        self.backend_factory = backend_factory
        self.worker_id = worker_id or default_worker_id()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.purge_every_seconds = purge_every_seconds
        self.metrics = metrics
        self.stop_event = threading.Event()
        self._backends: dict[str, LLMBackend] = {}
        self._next_purge = time.monotonic() + purge_every_seconds

    # -- loop ----------------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Work until :meth:`stop`; then close the backends. Store outages are waited out, not fatal."""
        log.info("worker %s started on %s", self.worker_id, self.store.url)
        try:
            while not self.stop_event.is_set():
                try:
                    busy = self.run_once()
                    self._maybe_purge()
                except ClickloopError as exc:
                    log.warning("worker %s: %s", self.worker_id, exc)
                    busy = False
                if not busy:
                    self.stop_event.wait(self.poll_seconds)
        finally:
            self.close()
            log.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        """Ask the loop to end: the running iteration is abandoned before its next LLM call."""
        self.stop_event.set()

    def close(self) -> None:
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            backend.close()

    def run_once(self) -> bool:
        """Claim one due context and run its iteration; False when nothing was due."""
        context = self.store.claim_due(self.worker_id, self.lease_seconds)
        if context is None:
            return False
        outcome, hold = self._iterate(context)
        self.store.release_lease(context.context_id, self.worker_id, hold)
        if self.metrics is not None:
            self.metrics.iterations.labels(outcome).inc()
        return True

    # -- one iteration -------------------------------------------------------------------------------
    def _iterate(self, context: ContextRow) -> tuple[str, float]:
        """Run the iteration; the outcome label and the back-off to release the context with."""
        context_id = context.context_id
        attempt = context.last_error.attempts if context.last_error else 0
        with self._heartbeat(context_id) as lost:

            def ended() -> str | None:
                if lost.is_set():
                    return f"the lease on {context_id!r} was lost"
                return "the worker is stopping" if self.stop_event.is_set() else None

            try:
                backend = _Guarded(self._backend(str(context.config.get("llm", ""))), ended)
                after = run_iteration(self.store, context, backend, attempt)
            except (LeaseEnded, ConflictError) as exc:
                log.info("worker %s: iteration of %s abandoned: %s", self.worker_id, context_id, exc)
                return ("interrupted" if isinstance(exc, LeaseEnded) else "conflict"), 0.0
            except Exception as exc:  # noqa: BLE001 - one context's failure must not stop the worker
                failures = self._record_failure(context_id, exc, attempt)
                hold = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (failures - 1))
                if isinstance(exc, RateLimitError) and exc.retry_after:
                    hold = max(hold, exc.retry_after)
                log.warning(
                    "worker %s: iteration of %s failed (%d in a row, retry in %.0f s): %s: %s",
                    self.worker_id,
                    context_id,
                    failures,
                    hold,
                    type(exc).__name__,
                    exc,
                    exc_info=not isinstance(exc, ClickloopError),
                )
                return "failed", hold
        log.info("worker %s: %s is at iteration %s", self.worker_id, context_id, after.iteration)
        return "applied", 0.0

    def _record_failure(self, context_id: str, exc: Exception, attempt: int) -> int:
        """Store the failure as the context's ``last_error``; the failed iterations in a row now."""
        try:
            return self.store.record_iteration_failure(context_id, f"{type(exc).__name__}: {exc}")
        except ClickloopError as store_exc:  # the store may be what failed: back off all the same
            log.warning("worker %s: could not record the failure of %s: %s", self.worker_id, context_id, store_exc)
            return attempt + 1

    def _backend(self, spec: str) -> LLMBackend:
        if spec not in self._backends:
            self._backends[spec] = self.backend_factory(spec)
        return self._backends[spec]

    @contextmanager
    def _heartbeat(self, context_id: str) -> Iterator[threading.Event]:
        """Renew the lease every third of ``lease_seconds``; the event is set once it is lost."""
        lost, done = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_seconds / 3):
                try:
                    if not self.store.renew_lease(context_id, self.worker_id, self.lease_seconds):
                        lost.set()
                        return
                except ClickloopError as exc:  # a store hiccup: try again before the lease runs out
                    log.warning("worker %s: renewing the lease on %s failed: %s", self.worker_id, context_id, exc)

        thread = threading.Thread(target=beat, name=f"lease-{context_id}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def _maybe_purge(self) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.purge_every_seconds
        purged = self.store.purge_impressions(time.time())
        if purged:
            log.info("worker %s: purged %d expired impressions", self.worker_id, purged)
