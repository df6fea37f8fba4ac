"""In-process caches of the serving path, one set per app: live pools and API-key lookups.

* :class:`PoolCache` keeps each context's live pool (item ids and texts) under ``(iteration,
  live_pool_size)`` of its context row. Every suggestion request reads that row anyway (for
  ``k_shown`` and the impression TTL), and within one iteration a pool only grows (approved items are
  appended) while item texts never change, so the key identifies the pool exactly: a new iteration or
  an approval in any process is served by the next request, and a hit costs no read. It replaces a
  ``live_pool`` read per request (four queries, one of them a ``GROUP BY`` over the context's whole
  history) by nothing.
* :class:`StatsCache` keeps each live pool's Beta posteriors for Thompson serving, read again at most
  every ``refresh_seconds`` of the context's config: the delay of the bandit's feedback, as
  ``ThompsonServing.batch_size`` models it in the simulator.
* :class:`KeyCache` keeps keys that were found for ``seconds``: a key revoked in another process (or
  with ``clickloop keys revoke``) keeps working in this process for at most that long. Unknown secrets
  are not cached, so a new key works at once. ``seconds=0`` looks every request up.

Both are safe to share between the threads of one process (single dict operations under the GIL; a
race only makes two threads read the same row).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clickloop.core.items import ItemStats
from clickloop.core.posterior import BetaPrior, posteriors
from clickloop.service.store import ApiKeyRow, ContextRow, Store, secret_sha256

DEFAULT_MAX_CONTEXTS = 10_000
DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True)
class ServedPool:
    """What suggestions are drawn from: pool IP_``iteration`` as ``(item_id, text)`` pairs, in pool order."""

    iteration: int
    items: tuple[tuple[str, str], ...]


class PoolCache:
    """Live pools by context, at most ``max_contexts`` of them (the oldest entry is evicted first)."""

    def __init__(self, max_contexts: int = DEFAULT_MAX_CONTEXTS) -> None:
        if isinstance(max_contexts, bool) or not isinstance(max_contexts, int) or max_contexts < 1:
            raise ValueError(f"max_contexts ({max_contexts!r}) must be an integer >= 1")
        self.max_contexts = max_contexts
        self._pools: dict[str, tuple[tuple[int, int], ServedPool]] = {}
        self.hits = 0
        self.misses = 0

    def live_pool(self, store: Store, context: ContextRow) -> ServedPool:
        """The live pool of ``context`` (a row just read; it must have a pool)."""
        entry = self._pools.get(context.context_id)
        if entry is not None and entry[0] == (context.iteration, context.live_pool_size):
            self.hits += 1
            return entry[1]
        self.misses += 1
        pool = store.live_pool(context.context_id)
        served = ServedPool(pool.iteration, tuple((e.item.item_id, e.item.text) for e in pool.entries))
        # keyed by what was read: an iteration applied since the row was read is served, and cached, as is
        if len(self._pools) >= self.max_contexts and context.context_id not in self._pools:
            self._pools.pop(next(iter(self._pools)), None)
        self._pools[context.context_id] = ((served.iteration, len(served.items)), served)
        return served


class StatsCache:
    """Per context, the (alpha, beta) posteriors of the served pool's items (their totals over all
    iterations, under ``prior``), each kept up to the context's ``serving_refresh_seconds``."""

    def __init__(
        self,
        max_contexts: int = DEFAULT_MAX_CONTEXTS,
        prior: BetaPrior = BetaPrior(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_contexts = max_contexts
        self.prior = prior
        self.clock = clock
        self._entries: dict[str, tuple[float, ServedPool, np.ndarray, np.ndarray]] = {}

    def posteriors(self, store: Store, context: ContextRow, served: ServedPool) -> tuple[np.ndarray, np.ndarray]:
        """Arrays aligned with ``served.items``."""
        now = self.clock()
        entry = self._entries.get(context.context_id)
        if entry is not None and entry[0] > now and entry[1] is served:
            return entry[2], entry[3]
        totals = {e.item.item_id: e.total for e in store.live_pool(context.context_id).entries}
        alpha, beta = posteriors([totals.get(item_id, ItemStats()) for item_id, _ in served.items], self.prior)
        if len(self._entries) >= self.max_contexts and context.context_id not in self._entries:
            self._entries.pop(next(iter(self._entries)), None)
        refresh = float(context.config.get("serving_refresh_seconds", 5.0))
        self._entries[context.context_id] = (now + refresh, served, alpha, beta)
        return alpha, beta


class KeyCache:
    """Found API keys by the sha256 of their secret, each for ``seconds`` (0: no caching)."""

    def __init__(
        self, seconds: float, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 60:
            raise ValueError(f"key cache seconds ({seconds!r}) must be a number in [0, 60]")
        self.seconds = float(seconds)
        self.max_keys = max_keys
        self.clock = clock
        self._keys: dict[str, tuple[float, ApiKeyRow]] = {}

    def cached(self, secret: str) -> ApiKeyRow | None:
        """The key with this secret if the store found it unrevoked at most ``seconds`` ago (no lookup)."""
        if self.seconds <= 0:
            return None
        entry = self._keys.get(secret_sha256(secret))
        return entry[1] if entry is not None and entry[0] > self.clock() else None

    def find(self, store: Store, secret: str) -> ApiKeyRow | None:
        """The unrevoked key with this secret, as the store said at most ``seconds`` ago; else None."""
        digest = secret_sha256(secret)
        if self.seconds <= 0:
            return store.find_api_key(digest)
        now = self.clock()
        entry = self._keys.get(digest)
        if entry is not None and entry[0] > now:
            return entry[1]
        key = store.find_api_key(digest)
        if key is None:
            self._keys.pop(digest, None)
            return None
        if len(self._keys) >= self.max_keys:
            self._keys = {d: entry for d, entry in self._keys.items() if entry[0] > now}
            if len(self._keys) >= self.max_keys:
                self._keys.pop(next(iter(self._keys)))
        self._keys[digest] = (now + self.seconds, key)
        return key
