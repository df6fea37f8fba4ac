"""What the SQL of both stores shares: a dialect description and a thin transaction handle.

Queries are written once, with ``?`` placeholders and SQL that SQLite (>= 3.35) and PostgreSQL both
accept (``ON CONFLICT``, ``RETURNING``); :class:`Dialect` supplies the few places they differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Dialect:
    """``lock_row``: appended to a SELECT of a row the transaction will update (PostgreSQL:
    ``FOR UPDATE``; SQLite needs none, its write transactions start with ``BEGIN IMMEDIATE``).
    ``claim``: appended to the SELECT that picks work for a worker (``FOR UPDATE SKIP LOCKED``).
    ``paramstyle``: ``qmark`` (as written) or ``format`` (``%s``, with literal ``%`` doubled).
    """

    name: str
    lock_row: str = ""
    claim: str = ""
    paramstyle: str = "qmark"

    def sql(self, query: str) -> str:
        return _to_format(query) if self.paramstyle == "format" else query


@lru_cache(maxsize=512)
def _to_format(query: str) -> str:
    return query.replace("%", "%%").replace("?", "%s")


class Tx:
    """A cursor inside an open transaction (commit/rollback belong to the store that made it)."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def run(self, query: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""
        self._cursor.execute(self.dialect.sql(query), tuple(params))
        return int(self._cursor.rowcount)

    def many(self, query: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self._cursor.executemany(self.dialect.sql(query), rows)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self.dialect.sql(query), tuple(params))
        return [tuple(r) for r in self._cursor.fetchall()]

    def row(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        self._cursor.execute(self.dialect.sql(query), tuple(params))
        found = self._cursor.fetchone()
        return None if found is None else tuple(found)

    def value(self, query: str, params: Sequence[Any] = ()) -> Any:
        found = self.row(query, params)
        return None if found is None else found[0]


def marks(values: Sized) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``values``."""
    return ", ".join("?" * len(values))


def dump_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


Clock = Callable[[], float]
