"""Storage of the online service behind one :class:`Store` protocol.

========================================  ==========================================================
URL                                       store
========================================  ==========================================================
``sqlite:///relative/file.db``            SQLite file (the default), path relative to the folder
``sqlite:////absolute/file.db``           SQLite file, absolute path (four slashes, as SQLAlchemy)
``runs/service.db`` (no scheme)           SQLite file at that path
``postgresql://user@host:5432/db``        PostgreSQL (``pip install -e '.[postgres]'``); libpq
                                          parameters such as ``?options=-csearch_path%3Dmyschema``
========================================  ==========================================================
"""

from __future__ import annotations

import time

from clickloop.errors import UnknownIdError, ValidationError
from clickloop.service.store.base import (
    ApiKeyRole,
    ApiKeyRow,
    ContextRow,
    EventIn,
    EventOutcome,
    EventStatus,
    ImpressionRow,
    ItemRow,
    ItemStatus,
    IterationFailure,
    LlmUsageRow,
    PoolEntry,
    PoolIteration,
    RejectReason,
    Schedule,
    Store,
    StoreMetrics,
    secret_sha256,
)
from clickloop.service.store.tx import Clock

__all__ = [
    "ApiKeyRole",
    "ApiKeyRow",
    "ContextRow",
    "EventIn",
    "EventOutcome",
    "EventStatus",
    "ImpressionRow",
    "ItemRow",
    "ItemStatus",
    "IterationFailure",
    "LlmUsageRow",
    "PoolEntry",
    "PoolIteration",
    "RejectReason",
    "Schedule",
    "Store",
    "StoreMetrics",
    "open_store",
    "secret_sha256",
]

URL_FORMS = ("sqlite:///relative.db", "sqlite:////absolute.db", "a plain path", "postgresql://user@host:5432/db")


def open_store(url: str, *, clock: Clock = time.time) -> Store:
    """Connect to the store at ``url`` and apply pending migrations; ``clock`` gives epoch seconds."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(f"store URL must be a non-empty string, got {url!r}; e.g. {URL_FORMS[0]}")
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _sqlite(url, clock)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise ValidationError(
                f"SQLite URL {url!r} must name a file: sqlite:///relative.db or sqlite:////absolute.db "
                "(in-memory databases are not shared between connections)"
            )
        return _sqlite(rest[1:], clock)
    if scheme in ("postgresql", "postgres"):
        from clickloop.service.store.postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    raise UnknownIdError("store URL scheme", scheme, URL_FORMS, "PostgreSQL needs pip install -e '.[postgres]'")


def _sqlite(path: str, clock: Clock) -> Store:
    from clickloop.service.store.sqlite import SqliteStore

    return SqliteStore(path, clock=clock)
