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
from typing import Any

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

    def sql(self, statement: str, url: str | None = None) -> list[tuple[object, ...]]:
        """Run raw SQL on the test's database (or the one at ``url``), outside the store; the rows it returns."""
        url = url or self.url
        if self.name == "sqlite":
            import sqlite3
            from contextlib import closing

            with closing(sqlite3.connect(url)) as conn, conn:
                return conn.execute(statement).fetchall()
        import psycopg

        with psycopg.connect(url) as conn:
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


# -- the HTTP API -----------------------------------------------------------------------------------


@dataclass
class Api:
    """The ASGI app on one test database, with an admin key and a client key for every context."""

    http: Any
    db: Backend
    admin: dict[str, str]
    client: dict[str, str]

    @property
    def store(self) -> Store:
        return self.db.store

    @staticmethod
    def bearer(secret: str) -> dict[str, str]:
        return bearer(secret)

    def key(self, role: str, context_ids: list[str] | None = None) -> dict[str, str]:
        """Headers with a new key's secret."""
        from clickloop.service.keys import create_key

        return bearer(create_key(self.store, role, context_ids)[1])

    def put_context(self, context_id: str = "shop", **config: Any) -> Any:
        body = {"topic": "Cookware Sets", "llm": "scripted", **config}
        response = self.http.put(f"/v1/contexts/{context_id}", json=body, headers=self.admin)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def iterate(self, **worker_options: Any) -> bool:
        """Let a worker run one due iteration, as the background worker would."""
        from clickloop.service.worker import Worker

        worker = Worker(self.store, worker_id="test-worker", **worker_options)
        try:
            return worker.run_once()
        finally:
            worker.close()

    def ready_context(self, context_id: str = "shop", **config: Any) -> Any:
        """A context with its initial pool."""
        self.put_context(context_id, **config)
        assert self.iterate()
        return self.http.get(f"/v1/contexts/{context_id}", headers=self.admin).json()

    def suggest(self, context_id: str = "shop") -> Any:
        response = self.http.get(f"/v1/contexts/{context_id}/suggestions", headers=self.client)
        assert response.status_code == 200, response.text
        return response.json()

    def post_events(self, events: list[dict[str, Any]], context_id: str = "shop", headers: Any = None) -> Any:
        return self.http.post(
            f"/v1/contexts/{context_id}/events", json={"events": events}, headers=headers or self.client
        )


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _api(db: Backend) -> Iterator[Api]:
    from fastapi.testclient import TestClient

    from clickloop.service.app import create_app
    from clickloop.service.keys import create_key

    app = create_app(store=db.store, run_worker=False, env={})
    with TestClient(app) as http:
        yield Api(http, db, bearer(create_key(db.store, "admin")[1]), bearer(create_key(db.store, "client")[1]))


@pytest.fixture
def api(backend: Backend) -> Iterator[Api]:
    """The API on SQLite and on PostgreSQL."""
    yield from _api(backend)


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    """The API on SQLite only (where the database makes no difference to what is tested)."""
    db = Backend("sqlite", str(tmp_path / "store.db"), FakeClock(), tmp_path)
    try:
        yield from _api(db)
    finally:
        db.teardown()
