"""The ``Store`` port of the online service and the frozen records it reads and writes.

Every method of a :class:`Store` is one database transaction: it either happens completely or not at
all. Timestamps are float epoch seconds (UTC), taken from the store's clock. Item ids, texts and
provenance are the core's :class:`~clickloop.core.items.Item`; counters are
:class:`~clickloop.core.items.ItemStats`.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from clickloop.core.items import Item, ItemStats
from clickloop.errors import ValidationError, require
from clickloop.llm.base import Completion, RoleUsage

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_KEY_CHARS = 200


class ItemStatus(enum.StrEnum):
    """Where an item stands in its context."""

    LIVE = "live"  # in the live pool (or was, until dropped)
    PENDING = "pending"  # generated, waiting for a person to approve it (``require_review``)
    REJECTED = "rejected"  # refused in review; never shown
    DROPPED = "dropped"  # removed from the pool by an iteration


class EventStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # idempotency key seen before, or a second click on the same shown item
    REJECTED = "rejected"


class RejectReason(enum.StrEnum):
    """Why an event was counted but not stored. Both are normal races (a page kept open past the TTL,
    impressions purged); a click on an item its known impression did not show is a client bug instead,
    and fails the whole batch (:meth:`Store.record_events`)."""

    UNKNOWN_IMPRESSION = "unknown_impression"  # no such impression id in this context
    EXPIRED_IMPRESSION = "expired_impression"  # older than the context's ``impression_ttl_seconds``


class ApiKeyRole(enum.StrEnum):
    ADMIN = "admin"  # everything
    CLIENT = "client"  # suggestions and events only


def check_slug(name: str, value: object) -> str:
    """``value`` if it is a slug (letters, digits, ``.``, ``_``, ``-``; at most 100), else ValidationError."""
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise ValidationError(
            f"{name} ({value!r}) must be 1-100 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def secret_sha256(secret: str) -> str:
    """The hex sha256 under which an API key's secret is stored (the secret itself never is)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Schedule:
    """When a context is due for an iteration; read from ``config["schedule"]``.

    ``every_n_impressions``: after this many impressions since the last iteration (0 = off).
    ``every_minutes``: this long after the last iteration (0 = off).
    ``min_impressions_per_item``: neither trigger fires until every live item has had this many
    impressions in the current iteration, so nothing is dropped on thin evidence. With
    ``gate_on_mean`` (set for contexts served by Thompson sampling, which starves the items it is sure
    are worse, so they might never get there) it is the live items' mean impressions. Nor do they while
    items wait for review, so the queue does not grow unread. An explicit request
    (:meth:`Store.request_iteration`) and the initial pool ignore all of this.
    """

    every_n_impressions: int = 0
    every_minutes: float = 0.0
    min_impressions_per_item: int = 0
    gate_on_mean: bool = False

    def __post_init__(self) -> None:
        for name in ("every_n_impressions", "min_impressions_per_item"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"schedule.{name} must be an integer, got {value!r}")
            require(value >= 0, f"schedule.{name} ({value}) must be >= 0; use 0 to turn it off")
        minutes = self.every_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes):
            raise ValidationError(f"schedule.every_minutes must be a finite number, got {minutes!r}")
        require(minutes >= 0, f"schedule.every_minutes ({minutes}) must be >= 0; use 0 to turn it off")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Schedule:
        raw = config.get("schedule") or {}
        if not isinstance(raw, Mapping):
            raise ValidationError(f"config.schedule must be an object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - {"every_n_impressions", "every_minutes", "min_impressions_per_item"})
        require(not unknown, f"config.schedule has unknown keys {unknown}")
        return cls(**raw, gate_on_mean=config.get("serving") == "thompson")


@dataclass(frozen=True)
class IterationFailure:
    """The last failed iteration of a context since its last applied one.

    ``message``: the error (``Type: text``, at most :data:`MAX_ERROR_CHARS` characters);
    ``failed_at``: when (epoch seconds); ``attempts``: failed iterations in a row.
    """

    message: str
    failed_at: float
    attempts: int


MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ContextRow:
    """A context as stored. ``config`` is the opaque JSON object the service validated (do not mutate).

    ``iteration``: index i of the live pool IP_i; None until the initial pool is applied.
    ``impressions_since_iteration``: impressions served from the live pool since it was applied.
    ``iteration_requested_at``: set by :meth:`Store.request_iteration`, cleared by the next iteration.
    ``leased_by``/``lease_until``: the worker running an iteration for it, and until when.
    ``live_pool_size``: items in the live pool IP_i now (0 before the initial pool). Within one
    iteration the pool only grows (approved items are appended), so ``(iteration, live_pool_size)``
    identifies its membership: the service caches the pool under that key.
    ``last_error``: the last failed iteration since the last applied one (None once one is applied).
    """

    context_id: str
    config: Mapping[str, Any]
    created_at: float
    updated_at: float
    iteration: int | None
    last_iteration_at: float | None
    impressions_since_iteration: int
    impressions_total: int
    iteration_requested_at: float | None
    leased_by: str | None
    lease_until: float | None
    live_pool_size: int = 0
    last_error: IterationFailure | None = None

    @property
    def schedule(self) -> Schedule:
        return Schedule.from_config(self.config)


@dataclass(frozen=True)
class ItemRow:
    """An item of a context with its review/pool status.

    ``iteration_created``: the iteration whose pool first held it (or would have, if pending).
    ``dropped_at``: the iteration whose step removed it: live in IP_i, absent from IP_(i+1) (as the
    core's ``ItemRecord.dropped_at``); None otherwise.
    """

    context_id: str
    item: Item
    status: ItemStatus
    iteration_created: int
    dropped_at: int | None
    created_at: float

    @property
    def item_id(self) -> str:
        return self.item.item_id


@dataclass(frozen=True)
class PoolEntry:
    """One item of a pool: ``stats`` in that pool's iteration, ``total`` over all iterations."""

    item: Item
    status: ItemStatus
    stats: ItemStats
    total: ItemStats


@dataclass(frozen=True)
class PoolIteration:
    """The pool IP_i of one iteration, in order of addition, with per-item counters."""

    context_id: str
    iteration: int
    created_at: float
    entries: tuple[PoolEntry, ...]

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(entry.item.item_id for entry in self.entries)


@dataclass(frozen=True)
class ImpressionRow:
    """``k_shown`` items shown together once; clicks must reference it before ``expires_at``."""

    impression_id: str
    context_id: str
    iteration: int
    item_ids: tuple[str, ...]
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class EventIn:
    """A click on ``item_id`` of impression ``impression_id``; ``dwell_ms``: optional time on it (ms).

    ``idempotency_key``: unique per client; a retried event with the same key counts once.
    """

    idempotency_key: str
    impression_id: str
    item_id: str
    dwell_ms: int | None = None

    def __post_init__(self) -> None:
        for name in ("idempotency_key", "impression_id", "item_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_CHARS:
                raise ValidationError(f"event {name} must be a string of 1-{MAX_KEY_CHARS} characters, got {value!r}")
        dwell = self.dwell_ms
        if dwell is not None and (isinstance(dwell, bool) or not isinstance(dwell, int) or not 0 <= dwell < 2**31):
            raise ValidationError(f"event dwell_ms must be an integer in [0, 2^31) or null, got {dwell!r}")


@dataclass(frozen=True)
class EventOutcome:
    """What happened to one event of a batch; ``label`` is ``accepted``, ``duplicate`` or ``rejected:<reason>``."""

    idempotency_key: str
    status: EventStatus
    reason: RejectReason | None = None

    def __post_init__(self) -> None:
        require(
            (self.reason is not None) == (self.status is EventStatus.REJECTED),
            f"EventOutcome.reason must be given exactly when status is rejected, got {self.status}/{self.reason}",
        )

    @property
    def label(self) -> str:
        return f"rejected:{self.reason}" if self.reason else str(self.status)


@dataclass(frozen=True)
class ApiKeyRow:
    """An API key without its secret. ``context_ids``: the contexts a client key may use (None = all)."""

    key_id: str
    role: ApiKeyRole
    context_ids: tuple[str, ...] | None
    label: str
    created_at: float
    revoked_at: float | None

    def allows(self, context_id: str) -> bool:
        """Whether this key may act on ``context_id`` (admin keys and unscoped keys: any)."""
        return self.revoked_at is None and (self.context_ids is None or context_id in self.context_ids)


@dataclass(frozen=True)
class LlmUsageRow:
    """LLM use of one role (``generator``, ``judge``) in one iteration of a context; ``seconds``: wall time."""

    context_id: str
    iteration: int
    role: str
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class StoreMetrics:
    """Totals for Prometheus. ``event_outcomes``: outcome label -> count, all contexts."""

    contexts: int
    impressions: int
    clicks: int
    pending_items: int
    event_outcomes: Mapping[str, int]


@runtime_checkable
class Store(Protocol):
    """Persistent state of the online service.

    Lifecycle: :func:`clickloop.service.store.open_store` connects and applies pending schema
    migrations; every method is then one transaction and is safe to call from several threads and
    processes at once; ``close()`` releases the connections (the store must not be used after).
    Errors: :class:`~clickloop.errors.NotFoundError` for an unknown context/item/key,
    :class:`~clickloop.errors.ValidationError` for bad arguments,
    :class:`~clickloop.errors.ConflictError` (a :class:`~clickloop.errors.StorageError`) for an id that
    exists already and for lost races, :class:`~clickloop.errors.StorageError` for database failures.
    """

    @property
    def url(self) -> str:
        """Where the store lives, password removed."""
        ...

    def close(self) -> None: ...

    def applied_migrations(self) -> list[tuple[int, str]]:
        """``(version, name)`` of every applied schema migration, ascending."""
        ...

    # contexts
    def create_context(self, context_id: str, config: Mapping[str, Any]) -> ContextRow:
        """A new context; ConflictError if ``context_id`` exists, ValidationError for an invalid schedule."""
        ...

    def update_context(self, context_id: str, config: Mapping[str, Any]) -> ContextRow: ...

    def get_context(self, context_id: str) -> ContextRow: ...

    def list_contexts(self) -> list[ContextRow]: ...

    # serving and feedback
    def record_impression(
        self, context_id: str, iteration: int, impression_id: str, item_ids: Sequence[str], ttl_seconds: float
    ) -> ImpressionRow:
        """Store an impression of ``item_ids`` (all in pool IP_``iteration``) and count one impression each."""
        ...

    def record_events(self, context_id: str, events: Sequence[EventIn], client_id: str = "") -> list[EventOutcome]:
        """Apply a batch in one transaction; one outcome per event, in order. Accepted clicks count for
        the item in the impression's iteration; rejections are only counted.

        ValidationError, storing and counting nothing, when an idempotency key repeats inside the batch
        or an event clicks an item that its (known, unexpired) impression did not show; its ``field``
        is ``events.N.idempotency_key`` or ``events.N.item_id`` (N: the event's index in the batch).
        """
        ...

    def purge_impressions(self, expired_before: float) -> int:
        """Delete impressions that expired before ``expired_before``; returns how many."""
        ...

    # reads
    def live_pool(self, context_id: str) -> PoolIteration:
        """The live pool; NotFoundError if the context has none yet."""
        ...

    def pool_history(self, context_id: str) -> list[PoolIteration]:
        """Every iteration's pool, ascending."""
        ...

    def list_items(self, context_id: str, status: ItemStatus | None = None) -> list[ItemRow]:
        """Every item (or those with ``status``) in order of creation, with provenance."""
        ...

    def event_counts(self, context_id: str | None = None) -> dict[str, int]:
        """Outcome label (``accepted``, ``duplicate``, ``rejected:<reason>``) -> count."""
        ...

    def metrics(self) -> StoreMetrics: ...

    # iterations
    def request_iteration(self, context_id: str, initial_only: bool = False) -> None:
        """Make the context due now, whatever its schedule; with ``initial_only``, only while it has
        no pool yet (a no-op once IP_0 exists)."""
        ...

    def claim_due(self, worker_id: str, lease_seconds: float) -> ContextRow | None:
        """Lease one due, unleased context to ``worker_id``; None when nothing is due."""
        ...

    def renew_lease(self, context_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease; False if ``worker_id`` no longer holds it."""
        ...

    def release_lease(self, context_id: str, worker_id: str, hold_seconds: float = 0.0) -> None:
        """Give the lease up; ``hold_seconds`` > 0 keeps the context unclaimed that long (back-off)."""
        ...

    def apply_iteration(
        self,
        context_id: str,
        expected_iteration: int | None,
        new_items: Sequence[Item],
        dropped_item_ids: Sequence[str],
        pending: bool = False,
    ) -> ContextRow:
        """Drop items, add new ones (pending review if ``pending``) and make the result the next pool;
        clears the context's ``last_error``.

        ConflictError, changing nothing, if the live iteration is no longer ``expected_iteration``.
        """
        ...

    def record_iteration_failure(self, context_id: str, message: str) -> int:
        """Record that an iteration of the context failed with ``message`` (cut to
        :data:`MAX_ERROR_CHARS`); returns the failed iterations in a row, this one included."""
        ...

    def approve_items(self, context_id: str, item_ids: Sequence[str]) -> None:
        """Pending items become live, appended to the current pool."""
        ...

    def reject_items(self, context_id: str, item_ids: Sequence[str]) -> None: ...

    # LLM
    def llm_cache_get(self, key: str) -> Completion | None:
        """As :meth:`clickloop.llm.cache.ResponseCache.get`: a hit is ``cached=True``, ``seconds=0``."""
        ...

    def llm_cache_put(self, key: str, backend_id: str, completion: Completion) -> None: ...

    def add_llm_usage(self, context_id: str, iteration: int, role: str, usage: RoleUsage) -> None:
        """Add ``usage`` to the row of (context, iteration, role)."""
        ...

    def llm_usage(self, context_id: str) -> list[LlmUsageRow]: ...

    # API keys
    def create_api_key(
        self,
        key_id: str,
        secret_hash: str,
        role: ApiKeyRole,
        context_ids: Sequence[str] | None = None,
        label: str = "",
    ) -> ApiKeyRow:
        """Store a key by the :func:`secret_sha256` of its secret; the caller makes and shows the secret.

        ConflictError if ``key_id`` or the secret is taken."""
        ...

    def find_api_key(self, secret_hash: str) -> ApiKeyRow | None:
        """The unrevoked key with this secret hash, if any."""
        ...

    def revoke_api_key(self, key_id: str) -> ApiKeyRow: ...

    def list_api_keys(self) -> list[ApiKeyRow]: ...
