"""One iteration of one context, out of the request path: the store's history in, the next pool out.

The context's pool history becomes a core :class:`~clickloop.core.pool.ContextState` (each item's
stats of the latest iteration it was live in are its observed CTR, as in the paper; totals are kept).
The context's strategy steps it with an :class:`~clickloop.strategies.ItemWriter` on the context's
domain, and the difference between the two pools is applied in one store transaction
(:meth:`Store.apply_iteration`). Before the first pool, IP_0 comes from the initialisation prompt.

LLM answers go through the store's response cache, so a rerun after a crash replays what was already
generated; LLM use is recorded per iteration (``store.add_llm_usage``), failed attempts included. Any
failure (LLM, parse, store) raises before anything is applied: the live pool stays as it was.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from clickloop.core.items import Item, ItemRecord, ItemStats
from clickloop.core.pool import Context, ContextState
from clickloop.errors import NotReadyError, StorageError
from clickloop.llm.base import Accounting, Completion, LLMBackend
from clickloop.llm.cache import Accounted, Cached
from clickloop.service.config import parse_config
from clickloop.service.store import ContextRow, Store
from clickloop.strategies import ItemConstraints, ItemWriter, Strategy

log = logging.getLogger(__name__)


class StoreCache:
    """The store's ``llm_cache`` table as a :class:`clickloop.llm.cache.CacheBackend`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> Completion | None:
        return self.store.llm_cache_get(key)

    def put(self, key: str, backend_id: str, completion: Completion) -> None:
        self.store.llm_cache_put(key, backend_id, completion)


def _seed(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:7], 16)


def load_state(store: Store, context: ContextRow, domain: str, topic: str) -> tuple[ContextState, tuple[str, ...]]:
    """The context as the strategies see it, and the texts of items that were never live (pending or
    rejected in review), which new items must not repeat either."""
    latest: dict[str, tuple[ItemStats, ItemStats]] = {}
    live: tuple[str, ...] = ()
    for pool in store.pool_history(context.context_id):
        for entry in pool.entries:
            latest[entry.item.item_id] = (entry.stats, entry.total)
        if pool.iteration == context.iteration:
            live = pool.item_ids
    history: dict[str, ItemRecord] = {}
    never_live: list[str] = []
    for row in store.list_items(context.context_id):
        if row.item_id in latest:
            stats, total = latest[row.item_id]
            history[row.item_id] = ItemRecord(row.item, stats, total, dropped_at=row.dropped_at)
        else:
            never_live.append(row.item.text)
    core = Context(context.context_id, domain, topic)
    return ContextState(core, live, history, context.iteration or 0), tuple(never_live)


def run_iteration(store: Store, context: ContextRow, backend: LLMBackend, attempt: int = 0) -> ContextRow:
    """Compute and apply the next pool of ``context`` (as claimed); the context as it is afterwards.

    ``attempt``: how many times this iteration failed before; it changes the sampling seeds, so a
    retry after unusable LLM output asks anew instead of replaying the cached answers.
    Raises :class:`~clickloop.errors.ConflictError` if another worker applied an iteration first.
    """
    config = parse_config(context.config)
    domain = config.load_domain()
    state, never_live = load_state(store, context, domain.name, config.topic)
    accounting = Accounting()
    writer = ItemWriter(
        domain,
        Accounted(Cached(backend, StoreCache(store)), accounting),
        ItemConstraints(domain.max_words, banned_words=domain.banned_words),
        config.generator_temperature,
        seed=_seed(context.context_id, attempt),
        avoid=never_live,
    )
    target = 0 if context.iteration is None else context.iteration + 1
    dropped: list[str]
    try:
        if context.iteration is None:
            new_items, dropped = writer.initial_pool(state.context, config.pool_size), []
        else:
            new_items, dropped = _step(
                state, config.make_strategy(), writer, _seed(context.context_id, target, attempt)
            )
        return store.apply_iteration(
            context.context_id, context.iteration, new_items, dropped, pending=config.require_review
        )
    finally:
        _record_usage(store, context.context_id, target, accounting)


def _step(state: ContextState, strategy: Strategy, writer: ItemWriter, seed: int) -> tuple[list[Item], list[str]]:
    if not state.pool:
        raise NotReadyError(
            f"context {state.context.context_id!r} has an empty live pool (its items wait for review); "
            "approve some before the next iteration",
            retry_after=60.0,
        )
    after = strategy.step(state, writer, np.random.default_rng(seed))
    new_items = [after.history[i].item for i in after.pool if i not in state.history]
    dropped = [i for i in state.pool if i not in after.pool]
    return new_items, dropped


def _record_usage(store: Store, context_id: str, iteration: int, accounting: Accounting) -> None:
    for role, usage in sorted(accounting.roles.items()):
        try:
            store.add_llm_usage(context_id, iteration, role, usage)
        except StorageError as exc:  # accounting must not hide the iteration's own outcome
            log.warning("could not record LLM usage of %s iteration %d: %s", context_id, iteration, exc)
