"""The SQLite store (the default): one file in WAL mode, for several threads and processes on one machine.

Each thread (and each process: the connection is remade after a fork) has its own connection in
autocommit mode, with explicit transactions. Write transactions start with ``BEGIN IMMEDIATE``, which
takes the database's one write lock at once, so concurrent writers queue for up to ``busy_timeout_s``
instead of failing half way; reads start with a deferred ``BEGIN`` and see one snapshot while writers
go on (WAL).

Writers queue well: the threads of one process take turns on a lock of the process (a thread
waiting there wakes as soon as the lock is free), so only one of them at a time asks SQLite for the
write lock; when another process holds it, that one retries at the timer's resolution (tens of µs)
for 2 ms, then at intervals doubling up to 1 ms. SQLite's own busy handler would sleep 1, 2, 5, 10,
15 ... ms between tries, and under load a writer unlucky a few times in a row waited 100 ms and more.

WAL checkpoints (copying the log back into the database file, with an fsync) run in a background thread
of each process every ``checkpoint_seconds`` rather than in whichever write transaction happens to
cross SQLite's threshold: that write would otherwise stall for milliseconds, and the event loop of the
service with it. SQLite's own automatic checkpoint stays on at :data:`AUTOCHECKPOINT_PAGES`, a safety
net should the thread fall behind; ``checkpoint_seconds=0`` leaves checkpoints to SQLite alone.

With ``synchronous="NORMAL"`` (default) a committed transaction survives a crash of the process
(``kill -9``); only a power loss can take the last ones back. ``"FULL"`` closes that gap at the cost of
an fsync per commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from clickloop.errors import StorageError, require
from clickloop.service.store.sql import Mode, SqlStore
from clickloop.service.store.tx import Clock, Dialect, Tx

log = logging.getLogger(__name__)

DIALECT = Dialect("sqlite")
AUTOCHECKPOINT_PAGES = 20_000  # SQLite's default is 1,000 pages; the background thread normally checkpoints first
WAL_SIZE_LIMIT_BYTES = 64 * 2**20


class SqliteStore(SqlStore):
    dialect = DIALECT
    driver_errors = (sqlite3.Error,)
    runs_inline = True

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = time.time,
        busy_timeout_s: float = 10.0,
        synchronous: str = "NORMAL",
        checkpoint_seconds: float = 0.5,
    ) -> None:
        require(synchronous in ("NORMAL", "FULL"), f"synchronous ({synchronous!r}) must be 'NORMAL' or 'FULL'")
        require(checkpoint_seconds >= 0, f"checkpoint_seconds ({checkpoint_seconds!r}) must be >= 0")
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}", clock)
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self._checkpointer = _Checkpointer(self.path, checkpoint_seconds)
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
        # switching a new file to WAL can answer SQLITE_BUSY at once, without SQLite's busy handler, when
        # several connections open it together
        self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"), time.monotonic() + self._busy_timeout_s)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        if self._checkpointer.seconds:
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")  # a log reset cuts the file back
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self, mode: Mode) -> Iterator[Tx]:
        conn = self._connection()
        if mode == "read":
            conn.execute("BEGIN")
            with self._finishing(conn) as tx:
                yield tx
            return
        started = time.monotonic()
        if not self._writer.acquire(timeout=self._busy_timeout_s):
            raise sqlite3.OperationalError(f"database is locked (no turn to write within {self._busy_timeout_s} s)")
        try:
            self._checkpointer.start()
            self._begin_immediate(conn, started + self._busy_timeout_s)
            with self._finishing(conn) as tx:
                yield tx
        finally:
            self._writer.release()

    @contextmanager
    def _finishing(self, conn: sqlite3.Connection) -> Iterator[Tx]:
        """The open transaction of ``conn``: committed at the end, rolled back on any exception."""
        try:
            yield Tx(conn.cursor(), self.dialect)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _begin_immediate(self, conn: sqlite3.Connection, deadline: float) -> None:
        """``BEGIN IMMEDIATE``, retried at short intervals while another process holds the write lock."""
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), deadline)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")

    @staticmethod
    def _retry_busy(statement: Callable[[], object], deadline: float) -> None:
        """Run ``statement`` until it does not answer SQLITE_BUSY or ``deadline`` passes: again at once
        (a 20 µs sleep) for 2 ms, a write's usual length, then at intervals doubling up to 1 ms."""
        delay, waited = 20e-6, 0.0
        while True:
            try:
                statement()
                return
            except sqlite3.OperationalError as exc:
                # the primary code: SQLITE_BUSY_RECOVERY and the other extended codes are busy too
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            waited += delay
            if waited > 2e-3:
                delay = min(2 * delay, 1e-3)

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
        self._checkpointer.stop()
        for conn in connections:
            conn.close()


class _Checkpointer:
    """A daemon thread of this process that runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``seconds``.

    PASSIVE never waits for readers or writers (it copies what it can), so it holds no one up; while it
    copies and syncs, the thread holds no GIL. Started on the first write of each process (a forked
    child starts its own), stopped by :meth:`stop`."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        self.seconds = seconds
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.seconds or self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clickloop-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(5.0)
        self._thread = None

    def _run(self) -> None:
        stop = self._stop
        conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
        try:
            while not stop.wait(self.seconds):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # e.g. another process checkpoints now: try next time
                    log.debug("checkpoint of %s skipped: %s", self.path, exc)
        finally:
            conn.close()
