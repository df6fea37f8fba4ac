"""Versioned schema migrations: ``migrations/<dialect>/NNNN_name.sql``, each applied once, in order.

The store calls :func:`apply_migrations` on open, inside a transaction that holds a lock only one
opener can have (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so concurrent openers
wait and then find the work done. A migration file holds plain statements separated by ``;`` and
``--`` comments; no ``;`` or ``--`` inside string literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from clickloop.errors import StorageError
from clickloop.service.store.tx import Tx

FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        text = re.sub(r"--[^\n]*", "", self.sql)
        return [part.strip() for part in text.split(";") if part.strip()]


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` (``sqlite`` or ``postgres``), ascending by version."""
    folder = resources.files("clickloop.service.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def apply_migrations(tx: Tx, migrations: list[Migration], now: float) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; the versions applied now."""
    tx.run(CREATE_TABLE)
    applied = {int(row[0]) for row in tx.rows("SELECT version FROM schema_migrations")}
    newest = max((m.version for m in migrations), default=0)
    if applied and max(applied) > newest:
        raise StorageError(
            f"the database schema is at version {max(applied)}, newer than this clickloop knows ({newest}); "
            "upgrade clickloop or point it at another database"
        )
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements():
            tx.run(statement)
        tx.run(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, now),
        )
        done.append(migration.version)
    return done


def applied_migrations(tx: Tx) -> list[tuple[int, str]]:
    return [(int(v), str(n)) for v, n in tx.rows("SELECT version, name FROM schema_migrations ORDER BY version")]
