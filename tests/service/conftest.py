"""Fixtures of the store contract suite: every test runs once on SQLite and once on PostgreSQL.

PostgreSQL: ``CLICKLOOP_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each
test gets its own schema, dropped afterwards. Without a reachable server the PostgreSQL half is
skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clickloop.service.store import Store, open_store

PG_URL = os.environ.get("CLICKLOOP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = (
    "schema_migrations",
    "contexts",
    "items",
    "iterations",
    "pool_items",
    "impressions",
    "events",
    "event_counts",
    "llm_cache",
    "llm_usage",
    "api_keys",
)


class FakeClock:
    """Epoch seconds that move only when told (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _postgres_unavailable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(exc).strip()}"
    return None


@pytest.fixture(scope="session")
def postgres_ready() -> None:
    reason = _postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI needs it (start it with pg_ctlcluster ... main start)")
    pytest.skip(reason)


@dataclass
class Backend:
    """One database for one test: ``store`` is open on it; ``open()`` opens more stores on it."""

    name: str
    url: str
    clock: FakeClock
    tmp_path: Path
    store: Store = field(init=False)
    _stores: list[Store] = field(default_factory=list)
    _schemas: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = self.open()

    def open(self, url: str | None = None) -> Store:
        store = open_store(url or self.url, clock=self.clock)
        self._stores.append(store)
        return store

    def fresh_url(self) -> str:
        """The URL of another empty database."""
        if self.name == "sqlite":
            return str(self.tmp_path / f"fresh-{uuid.uuid4().hex[:8]}.db")
        return _new_schema(self._schemas)

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """Run raw SQL on the test's database, outside the store; the rows it returns."""
        if self.name == "sqlite":
            import sqlite3
            from contextlib import closing

            with closing(sqlite3.connect(self.url)) as conn, conn:
                return conn.execute(statement).fetchall()
        import psycopg

        with psycopg.connect(self.url) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def raw_text(self) -> str:
        """Everything the database holds, as text (file bytes for SQLite, every row for PostgreSQL)."""
        if self.name == "sqlite":
            files = [Path(self.url + suffix) for suffix in ("", "-wal", "-shm")]
            return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
        return "\n".join(str(row) for table in TABLES for row in self.sql(f"SELECT t::text FROM {table} t"))

    def teardown(self) -> None:
        for store in self._stores:
            store.close()
        _drop_schemas(self._schemas)


def _drop_schemas(schemas: list[str]) -> None:
    if not schemas:
        return
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _new_schema(created: list[str]) -> str:
    import psycopg

    schema = f"clickloop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    created.append(schema)
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = FakeClock()
    schemas: list[str] = []
    if request.param == "postgres":
        request.getfixturevalue("postgres_ready")
        url = _new_schema(schemas)
    else:
        url = str(tmp_path / "store.db")
    try:
        made = Backend(request.param, url, clock, tmp_path, _schemas=schemas)
    except BaseException:
        _drop_schemas(schemas)
        raise
    yield made
    made.teardown()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store
