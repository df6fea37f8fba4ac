""":class:`SqlStore`: the :class:`~clickloop.service.store.base.Store` methods, written once.

Each method opens one transaction (``_tx``), reads the clock inside it and calls a query function of
:mod:`clickloop.service.store.queries`. Subclasses supply connections and transactions
(:meth:`SqlStore._transaction`) and say which driver errors become :class:`StorageError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from clickloop.core.items import Item
from clickloop.errors import StorageError
from clickloop.llm.base import Completion, RoleUsage
from clickloop.service.store import migrate
from clickloop.service.store.base import (
    ApiKeyRole,
    ApiKeyRow,
    ContextRow,
    EventIn,
    EventOutcome,
    ImpressionRow,
    ItemRow,
    ItemStatus,
    LlmUsageRow,
    PoolIteration,
    StoreMetrics,
)
from clickloop.service.store.queries import contexts, feedback, iterations, keys, llm, reads
from clickloop.service.store.tx import Clock, Dialect, Tx

Mode = Literal["read", "write", "migrate"]


class SqlStore:
    """Shared implementation; see the ``Store`` protocol for what each method promises."""

    dialect: Dialect
    driver_errors: tuple[type[Exception], ...] = ()
    runs_inline: bool = False
    """Whether a call is short local work (no network): the service then makes it on its event loop
    instead of handing it to a thread, which costs more than the call itself."""

    def __init__(self, url: str, clock: Clock) -> None:
        self._url = url
        self._clock = clock

    @property
    def url(self) -> str:
        return self._url

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- hooks ---------------------------------------------------------------------------------------
    def _transaction(self, mode: Mode) -> AbstractContextManager[Tx]:
        """A transaction: ``write`` holds the write lock from its start, ``migrate`` excludes other openers."""
        raise NotImplementedError

    def _hint(self, exc: Exception) -> str:
        """What to try when ``exc`` (a driver error) happened."""
        return "check the database is reachable and writable"

    def close(self) -> None:
        raise NotImplementedError

    # -- plumbing ------------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, action: str, mode: Mode = "read") -> Iterator[Tx]:
        try:
            with self._transaction(mode) as tx:
                yield tx
        except self.driver_errors as exc:
            raise StorageError(f"{action} failed on {self.url}: {exc}; {self._hint(exc)}") from exc

    def _migrate(self) -> None:
        with self._tx("applying schema migrations", "migrate") as tx:
            migrate.apply_migrations(tx, migrate.load_migrations(self.dialect.name), self._clock())

    def applied_migrations(self) -> list[tuple[int, str]]:
        with self._tx("reading schema_migrations") as tx:
            return migrate.applied_migrations(tx)

    # -- contexts ------------------------------------------------------------------------------------
    def create_context(self, context_id: str, config: Mapping[str, Any]) -> ContextRow:
        with self._tx(f"creating context {context_id!r}", "write") as tx:
            return contexts.create(tx, context_id, config, self._clock())

    def update_context(self, context_id: str, config: Mapping[str, Any]) -> ContextRow:
        with self._tx(f"updating context {context_id!r}", "write") as tx:
            return contexts.update(tx, context_id, config, self._clock())

    def get_context(self, context_id: str) -> ContextRow:
        with self._tx(f"reading context {context_id!r}") as tx:
            return contexts.get(tx, context_id)

    def list_contexts(self) -> list[ContextRow]:
        with self._tx("listing contexts") as tx:
            return contexts.list_all(tx)

    # -- serving and feedback ------------------------------------------------------------------------
    def record_impression(
        self, context_id: str, iteration: int, impression_id: str, item_ids: Sequence[str], ttl_seconds: float
    ) -> ImpressionRow:
        with self._tx(f"recording an impression of {context_id!r}", "write") as tx:
            return feedback.record_impression(
                tx, context_id, iteration, impression_id, item_ids, ttl_seconds, self._clock()
            )

    def record_events(self, context_id: str, events: Sequence[EventIn], client_id: str = "") -> list[EventOutcome]:
        with self._tx(f"recording {len(events)} events of {context_id!r}", "write") as tx:
            return feedback.record_events(tx, context_id, events, client_id, self._clock())

    def purge_impressions(self, expired_before: float) -> int:
        with self._tx("purging expired impressions", "write") as tx:
            return feedback.purge_impressions(tx, expired_before)

    # -- reads ---------------------------------------------------------------------------------------
    def live_pool(self, context_id: str) -> PoolIteration:
        with self._tx(f"reading the live pool of {context_id!r}") as tx:
            return reads.live_pool(tx, context_id)

    def pool_history(self, context_id: str) -> list[PoolIteration]:
        with self._tx(f"reading the pool history of {context_id!r}") as tx:
            return reads.pool_history(tx, context_id)

    def list_items(self, context_id: str, status: ItemStatus | None = None) -> list[ItemRow]:
        with self._tx(f"listing the items of {context_id!r}") as tx:
            return reads.list_items(tx, context_id, status)

    def event_counts(self, context_id: str | None = None) -> dict[str, int]:
        with self._tx("reading event counts") as tx:
            return reads.event_counts(tx, context_id)

    def metrics(self) -> StoreMetrics:
        with self._tx("reading metrics") as tx:
            return reads.metrics(tx)

    # -- iterations ----------------------------------------------------------------------------------
    def request_iteration(self, context_id: str, initial_only: bool = False) -> None:
        with self._tx(f"requesting an iteration of {context_id!r}", "write") as tx:
            iterations.request(tx, context_id, self._clock(), initial_only)

    def claim_due(self, worker_id: str, lease_seconds: float) -> ContextRow | None:
        with self._tx("claiming a due context", "write") as tx:
            return iterations.claim(tx, worker_id, lease_seconds, self._clock())

    def renew_lease(self, context_id: str, worker_id: str, lease_seconds: float) -> bool:
        with self._tx(f"renewing the lease on {context_id!r}", "write") as tx:
            return iterations.renew(tx, context_id, worker_id, lease_seconds, self._clock())

    def release_lease(self, context_id: str, worker_id: str, hold_seconds: float = 0.0) -> None:
        with self._tx(f"releasing the lease on {context_id!r}", "write") as tx:
            iterations.release(tx, context_id, worker_id, hold_seconds, self._clock())

    def apply_iteration(
        self,
        context_id: str,
        expected_iteration: int | None,
        new_items: Sequence[Item],
        dropped_item_ids: Sequence[str],
        pending: bool = False,
    ) -> ContextRow:
        with self._tx(f"applying an iteration to {context_id!r}", "write") as tx:
            return iterations.apply(
                tx, context_id, expected_iteration, new_items, dropped_item_ids, pending, self._clock()
            )

    def record_iteration_failure(self, context_id: str, message: str) -> int:
        with self._tx(f"recording a failed iteration of {context_id!r}", "write") as tx:
            return iterations.record_failure(tx, context_id, message, self._clock())

    def approve_items(self, context_id: str, item_ids: Sequence[str]) -> None:
        with self._tx(f"approving items of {context_id!r}", "write") as tx:
            iterations.review(tx, context_id, item_ids, approve=True)

    def reject_items(self, context_id: str, item_ids: Sequence[str]) -> None:
        with self._tx(f"rejecting items of {context_id!r}", "write") as tx:
            iterations.review(tx, context_id, item_ids, approve=False)

    # -- LLM -----------------------------------------------------------------------------------------
    def llm_cache_get(self, key: str) -> Completion | None:
        with self._tx("reading the LLM cache") as tx:
            return llm.cache_get(tx, key)

    def llm_cache_put(self, key: str, backend_id: str, completion: Completion) -> None:
        with self._tx("writing the LLM cache", "write") as tx:
            llm.cache_put(tx, key, backend_id, completion, self._clock())

    def add_llm_usage(self, context_id: str, iteration: int, role: str, usage: RoleUsage) -> None:
        with self._tx(f"recording LLM usage of {context_id!r}", "write") as tx:
            llm.add_usage(tx, context_id, iteration, role, usage)

    def llm_usage(self, context_id: str) -> list[LlmUsageRow]:
        with self._tx(f"reading LLM usage of {context_id!r}") as tx:
            return llm.usage(tx, context_id)

    # -- API keys ------------------------------------------------------------------------------------
    def create_api_key(
        self,
        key_id: str,
        secret_hash: str,
        role: ApiKeyRole,
        context_ids: Sequence[str] | None = None,
        label: str = "",
    ) -> ApiKeyRow:
        with self._tx(f"creating API key {key_id!r}", "write") as tx:
            return keys.create(tx, key_id, secret_hash, role, context_ids, label, self._clock())

    def find_api_key(self, secret_hash: str) -> ApiKeyRow | None:
        with self._tx("looking up an API key") as tx:
            return keys.find(tx, secret_hash)

    def revoke_api_key(self, key_id: str) -> ApiKeyRow:
        with self._tx(f"revoking API key {key_id!r}", "write") as tx:
            return keys.revoke(tx, key_id, self._clock())

    def list_api_keys(self) -> list[ApiKeyRow]:
        with self._tx("listing API keys") as tx:
            return keys.list_all(tx)
