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

The dashboard (:mod:`clickloop.service.dashboard`) logs a browser in by setting the cookie
:data:`SESSION_COOKIE` (HttpOnly, SameSite=Strict) to the admin secret. A request without an
``Authorization`` header is authenticated by that cookie instead; one that changes state (not GET, HEAD
or OPTIONS) must then also send ``X-Requested-With: clickloop-dashboard``, or it is refused with 403
(a cross-site form cannot set that header; SameSite=Strict already keeps the cookie off cross-site
requests). The cookie is read from the request directly so the OpenAPI spec still shows Bearer only.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clickloop.errors import AuthenticationError, ForbiddenError
from clickloop.service.deps import call_store, get_store, key_cache
from clickloop.service.store import ApiKeyRole, ApiKeyRow, Store, secret_sha256

bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key secret (`clk_...`) from `clickloop keys create`."
)


SESSION_COOKIE = "clickloop_admin"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "clickloop-dashboard"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    store: Store = Depends(get_store),
) -> ApiKeyRow:
    """The unrevoked key whose secret the request carries (Bearer, else the dashboard cookie);
    AuthenticationError otherwise."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if credentials is None and cookie and "authorization" not in request.headers:
        return _cookie_key(request, cookie, store)
    if credentials is None:
        raise AuthenticationError(
            "missing API key: send the header 'Authorization: Bearer <secret>' "
            "(an admin makes keys with 'clickloop keys create')"
        )
    key = _find_key(request, store, credentials.credentials)
    if key is None:
        raise AuthenticationError("the API key is unknown or revoked; ask an admin for a valid one")
    return key


async def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> ApiKeyRow:
    """:func:`authenticate` as the routes' dependency: a Bearer key in the app's key cache costs no
    lookup and no thread switch; otherwise the lookup runs as :func:`~clickloop.service.deps.call_store`
    says."""
    cache = key_cache(request)
    if credentials is not None and cache is not None and (key := cache.cached(credentials.credentials)):
        return key
    store: Store = request.app.state.store
    return await call_store(store, authenticate, request, credentials, store)


def _find_key(request: Request, store: Store, secret: str) -> ApiKeyRow | None:
    cache = key_cache(request)
    return cache.find(store, secret) if cache is not None else store.find_api_key(secret_sha256(secret))


def _cookie_key(request: Request, secret: str, store: Store) -> ApiKeyRow:
    key = _find_key(request, store, secret)
    if key is None:
        raise AuthenticationError("the dashboard session's key is unknown or revoked; log in again at /dashboard/login")
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ForbiddenError(
            f"a request authenticated by the dashboard cookie that changes state must send the header "
            f"'{CSRF_HEADER}: {CSRF_VALUE}' (or use 'Authorization: Bearer <secret>')",
            field=CSRF_HEADER,
        )
    return key


async def require_admin(key: ApiKeyRow = Depends(authenticated)) -> ApiKeyRow:
    if key.role is not ApiKeyRole.ADMIN:
        raise ForbiddenError(f"API key {key.key_id!r} is a {key.role} key; this route needs an admin key")
    return key


async def require_client(context_id: str, key: ApiKeyRow = Depends(authenticated)) -> ApiKeyRow:
    """A client key allowed on the path's ``context_id``, or an admin key."""
    if key.role is ApiKeyRole.ADMIN or key.allows(context_id):
        return key
    scope = ", ".join(key.context_ids or ())
    raise ForbiddenError(f"API key {key.key_id!r} may use the contexts [{scope}], not {context_id!r}")
