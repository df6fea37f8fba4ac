"""API keys, stored by the sha256 of their secret only."""

from __future__ import annotations

from collections.abc import Sequence

from clickloop.errors import ConflictError, NotFoundError, ValidationError, require
from clickloop.service.store.base import SHA256_HEX, ApiKeyRole, ApiKeyRow, check_slug
from clickloop.service.store.tx import Row, Tx, dump_json, load_json

COLUMNS = "key_id, role, context_ids, label, created_at, revoked_at"


def _to_row(row: Row) -> ApiKeyRow:
    scope = load_json(row[2])
    return ApiKeyRow(
        str(row[0]), ApiKeyRole(row[1]), None if scope is None else tuple(scope), str(row[3]), float(row[4]), row[5]
    )


def _role(role: ApiKeyRole | str) -> ApiKeyRole:
    try:
        return ApiKeyRole(role)
    except ValueError:
        raise ValidationError(f"role ({role!r}) must be one of {[r.value for r in ApiKeyRole]}") from None


def _scope(role: ApiKeyRole, context_ids: Sequence[str] | None) -> str | None:
    if context_ids is None:
        return None
    require(role is ApiKeyRole.CLIENT, "only client keys can be scoped to contexts; admin keys act on all")
    require(not isinstance(context_ids, str), "context_ids must be a list of context ids, not one string")
    ids = [check_slug("context_ids[]", c) for c in context_ids]
    require(bool(ids), "context_ids must not be empty; pass None for a key that may use every context")
    return dump_json(sorted(set(ids)))


def create(
    tx: Tx,
    key_id: str,
    secret_hash: str,
    role: ApiKeyRole | str,
    context_ids: Sequence[str] | None,
    label: str,
    now: float,
) -> ApiKeyRow:
    check_slug("key_id", key_id)
    if not isinstance(secret_hash, str) or not SHA256_HEX.fullmatch(secret_hash):
        raise ValidationError(
            "secret_hash must be the 64 lower-case hex digits of secret_sha256(secret), never the secret"
        )
    checked = _role(role)
    require(isinstance(label, str) and len(label) <= 200, f"label must be a string of at most 200 chars, got {label!r}")
    inserted = tx.run(
        f"INSERT INTO api_keys (secret_sha256, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
        (secret_hash, key_id, checked.value, _scope(checked, context_ids), label, now),
    )
    if not inserted:
        raise ConflictError(f"an API key {key_id!r} or one with the same secret exists; choose another id and secret")
    return get(tx, key_id)


def get(tx: Tx, key_id: str) -> ApiKeyRow:
    row = tx.row(f"SELECT {COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}; list them to see the ids", field="key_id")
    return _to_row(row)


def find(tx: Tx, secret_hash: str) -> ApiKeyRow | None:
    row = tx.row(f"SELECT {COLUMNS} FROM api_keys WHERE secret_sha256 = ? AND revoked_at IS NULL", (secret_hash,))
    return None if row is None else _to_row(row)


def revoke(tx: Tx, key_id: str, now: float) -> ApiKeyRow:
    tx.run("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?", (now, key_id))
    return get(tx, key_id)


def list_all(tx: Tx) -> list[ApiKeyRow]:
    return [_to_row(r) for r in tx.rows(f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, key_id")]
