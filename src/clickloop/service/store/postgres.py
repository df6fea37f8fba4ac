"""The PostgreSQL store: for several processes and hosts; needs ``pip install -e '.[postgres]'``.

Connections come from a ``psycopg_pool.ConnectionPool``; every method that writes is one READ
COMMITTED transaction, and a read runs its statements without BEGIN/COMMIT (under READ COMMITTED each
statement sees its own snapshot either way). Rows that a transaction reads and then changes are locked
with ``FOR UPDATE``; a worker claims a due context with ``FOR UPDATE SKIP LOCKED``, so workers never
wait on or take each other's rows. Migrations run under a transaction-scoped advisory lock keyed by
the schema, so concurrent openers apply them once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from clickloop.errors import ConfigurationError, StorageError
from clickloop.service.store.sql import Mode, SqlStore
from clickloop.service.store.tx import Clock, Dialect, Tx

try:
    import psycopg
    import psycopg_pool
    from psycopg.types.string import TextLoader
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

DIALECT = Dialect("postgres", lock_row=" FOR UPDATE", claim=" FOR UPDATE SKIP LOCKED", paramstyle="format")
# two-key advisory lock: a constant for clickloop migrations, and the schema they run in
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(1129074511, hashtext(current_schema()))"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(SqlStore):
    dialect = DIALECT

    def __init__(
        self, url: str, *, clock: Clock = time.time, min_size: int = 1, max_size: int = 8, timeout_s: float = 10.0
    ) -> None:
        if psycopg is None:
            raise ConfigurationError("a postgresql:// store needs psycopg 3: pip install -e '.[postgres]'")
        super().__init__(redact(url), clock)
        self.driver_errors = (psycopg.Error, psycopg_pool.PoolTimeout)
        self._timeout_s = timeout_s
        self._check_reachable(url)
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout_s, configure=_configure, open=False
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _check_reachable(self, url: str) -> None:
        """Connect once, so that a wrong URL or a stopped server fails now and with the driver's reason."""
        try:
            psycopg.connect(url, connect_timeout=max(1, int(self._timeout_s))).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise StorageError(
                f"cannot connect to {self.url}: {reason}; is the server running, and are host, port, user and "
                "database right?"
            ) from exc

    @contextmanager
    def _transaction(self, mode: Mode) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.cursor() as cursor:
            if mode == "read":
                # no BEGIN/COMMIT round trips: under READ COMMITTED every statement takes its own snapshot
                # anyway, inside a transaction or not, and reads lock nothing
                yield Tx(cursor, self.dialect)
                return
            with conn.transaction():
                if mode == "migrate":
                    cursor.execute(MIGRATION_LOCK)
                yield Tx(cursor, self.dialect)

    def _hint(self, exc: Exception) -> str:
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return f"no connection came free within {self._timeout_s} s; is the server up? Raise max_size if busy"
        if isinstance(exc, psycopg.OperationalError):
            return "is the server running and reachable?"
        return "see the PostgreSQL server log for details"

    def close(self) -> None:
        self._pool.close()


def _configure(conn: Any) -> None:
    # JSONB comes back as text, as from SQLite's TEXT columns, so the shared code parses it once
    conn.adapters.register_loader("jsonb", TextLoader)
    # transactions are explicit (``conn.transaction()`` for writes); a read is one round trip per statement
    conn.autocommit = True
