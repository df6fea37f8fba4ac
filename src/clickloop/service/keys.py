"""Making API keys: a secret is ``clk_`` + ``secrets.token_urlsafe(32)`` (256 random bits), shown once
to the operator and stored only as its sha256 (:func:`clickloop.service.store.secret_sha256`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from clickloop.service.store import ApiKeyRole, ApiKeyRow, Store, secret_sha256

SECRET_PREFIX = "clk_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def create_key(
    store: Store, role: ApiKeyRole | str, context_ids: Sequence[str] | None = None, label: str = ""
) -> tuple[ApiKeyRow, str]:
    """A new key and its secret; ``context_ids`` scope a client key (None: every context)."""
    secret = new_secret()
    key_id = f"key_{secrets.token_hex(4)}"
    return store.create_api_key(key_id, secret_sha256(secret), ApiKeyRole(role), context_ids, label), secret
