"""The SQLite store (the default): one file in WAL mode, for several threads and processes on one machine.

Each thread (and each process: the connection is remade after a fork) has its own connection in
autocommit mode, with explicit transactions. Write transactions start with ``BEGIN IMMEDIATE``, which
takes the database's one write lock at once, so concurrent writers queue for up to ``busy_timeout_s``
instead of failing half way; reads start with a deferred ``BEGIN`` and see one snapshot while writers
go on (WAL). With ``synchronous="NORMAL"`` (default) a committed transaction survives a crash of the
process (``kill -9``); only a power loss can take the last ones back. ``"FULL"`` closes that gap at
the cost of an fsync per commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clickloop.errors import StorageError, require
from clickloop.service.store.sql import Mode, SqlStore
from clickloop.service.store.tx import Clock, Dialect, Tx

DIALECT = Dialect("sqlite")


class SqliteStore(SqlStore):
    dialect = DIALECT
    driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = time.time,
        busy_timeout_s: float = 10.0,
        synchronous: str = "NORMAL",
    ) -> None:
        require(synchronous in ("NORMAL", "FULL"), f"synchronous ({synchronous!r}) must be 'NORMAL' or 'FULL'")
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}", clock)
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the folder of {self.path}: {exc}; choose a writable path") from exc
        self._migrate()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise StorageError(f"the store {self.url} is closed; open a new one")
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self, mode: Mode) -> Iterator[Tx]:
        conn = self._connection()
        conn.execute("BEGIN" if mode == "read" else "BEGIN IMMEDIATE")
        try:
            yield Tx(conn.cursor(), self.dialect)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _hint(self, exc: Exception) -> str:
        if "locked" in str(exc) or "busy" in str(exc):
            return (
                f"another process held the write lock longer than busy_timeout ({self._busy_timeout_s} s); "
                "retry, or use PostgreSQL for many concurrent writers"
            )
        return f"check that {self.path} is a writable SQLite database file"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
