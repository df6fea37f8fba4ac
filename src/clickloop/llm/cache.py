"""Response cache and accounting wrappers around any :class:`LLMBackend`.

The cache key is :func:`clickloop.llm.base.cache_key`: sha256 over backend id and the full request
(messages, sampling parameters, seed, sample index). :class:`Cached` takes any :class:`CacheBackend`:
:class:`ResponseCache` (a SQLite file in WAL mode, which several threads and processes can share) for
experiments, the service's store for the online service. Rows are JSON. A hit is marked
``cached=True`` and costs no LLM time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from clickloop.errors import StorageError
from clickloop.llm.base import Accounting, ChatRequest, Completion, LLMBackend, cache_key


class CacheBackend(Protocol):
    """Where :class:`Cached` keeps answers. ``get`` returns a hit marked ``cached=True``, ``seconds=0``."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, backend_id: str, completion: Completion) -> None: ...


class ResponseCache:
    """A SQLite table ``responses(key TEXT PRIMARY KEY, backend, response JSON, created)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses ("
                    "key TEXT PRIMARY KEY, backend TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)"
                )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the LLM cache {self.path}: {exc}; check the folder is writable") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Completion | None:
        row = self._connect().execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return replace(Completion.from_json(json.loads(row[0])), cached=True, seconds=0.0)

    def put(self, key: str, backend_id: str, completion: Completion) -> None:
        payload = json.dumps(replace(completion, cached=False).to_json(), ensure_ascii=False)
        self._connect().execute(
            "INSERT OR REPLACE INTO responses (key, backend, response, created) VALUES (?, ?, ?, ?)",
            (key, backend_id, payload, time.time()),
        )

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class BackendWrapper:
    """Base of wrappers around a backend (``Cached(Retrying(backend))``): the backend's properties and
    lifecycle pass through; a subclass defines ``complete``."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.backend_id = inner.backend_id
        self.supports_logprobs = inner.supports_logprobs
        self.max_concurrency = inner.max_concurrency

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()


class Cached(BackendWrapper):
    """Serve repeated requests from a :class:`CacheBackend`.

    Every answer the backend returns is stored, also one a parser later rejects (errors are not): a
    re-ask must differ in seed or ``sample_index`` to get a new answer, as the writer's re-asks and a
    rerun of a failed experiment cell do."""

    def __init__(self, inner: LLMBackend, cache: CacheBackend) -> None:
        super().__init__(inner)
        self.cache = cache

    def complete(self, request: ChatRequest) -> Completion:
        key = cache_key(self.backend_id, request)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        completion = self.inner.complete(request)
        self.cache.put(key, self.backend_id, completion)
        return completion


class Accounted(BackendWrapper):
    """Add every answer to an :class:`Accounting` under the request's ``purpose``."""

    def __init__(self, inner: LLMBackend, accounting: Accounting | None = None) -> None:
        super().__init__(inner)
        self.accounting = accounting or Accounting()
        self._lock = threading.Lock()

    def complete(self, request: ChatRequest) -> Completion:
        completion = self.inner.complete(request)
        with self._lock:
            self.accounting.add(request.purpose, completion)
        return completion
