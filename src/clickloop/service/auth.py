"""The FastAPI dependencies that check API keys (made by :mod:`clickloop.service.keys`).

Requests send ``Authorization: Bearer <secret>``; the key is found by the secret's sha256.

==========================  ==================================================================
key                         may call
==========================  ==================================================================
admin                       everything
client                      suggestions and events, of every context or of its ``context_ids``
==========================  ==================================================================

No key, or an unknown or revoked one: 401 (with ``WWW-Authenticate: Bearer``). A valid key without
the role or scope the route needs: 403. Routers added later (the dashboard) depend on
:func:`require_admin` or :func:`require_client` the same way.
"""

from __future__ import annotations

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clickloop.errors import AuthenticationError, ForbiddenError
from clickloop.service.deps import get_store
from clickloop.service.store import ApiKeyRole, ApiKeyRow, Store, secret_sha256

bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key secret (`clk_...`) from `clickloop keys create`."
)


def authenticate(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer), store: Store = Depends(get_store)
) -> ApiKeyRow:
    """The unrevoked key whose secret the request carries; AuthenticationError otherwise."""
    if credentials is None:
        raise AuthenticationError(
            "missing API key: send the header 'Authorization: Bearer <secret>' "
            "(an admin makes keys with 'clickloop keys create')"
        )
    key = store.find_api_key(secret_sha256(credentials.credentials))
    if key is None:
        raise AuthenticationError("the API key is unknown or revoked; ask an admin for a valid one")
    return key


def require_admin(key: ApiKeyRow = Depends(authenticate)) -> ApiKeyRow:
    if key.role is not ApiKeyRole.ADMIN:
        raise ForbiddenError(f"API key {key.key_id!r} is a {key.role} key; this route needs an admin key")
    return key


def require_client(context_id: str, key: ApiKeyRow = Depends(authenticate)) -> ApiKeyRow:
    """A client key allowed on the path's ``context_id``, or an admin key."""
    if key.role is ApiKeyRole.ADMIN or key.allows(context_id):
        return key
    scope = ", ".join(key.context_ids or ())
    raise ForbiddenError(f"API key {key.key_id!r} may use the contexts [{scope}], not {context_id!r}")
