"""The dashboard's login session: a cookie that holds the admin secret the operator pasted.

The cookie (:data:`clickloop.service.auth.SESSION_COOKIE`) is HttpOnly (page script cannot read it),
SameSite=Strict (no cross-site request carries it), ``Path=/`` (the page's buttons call the admin API
under ``/v1``), Secure when the request came over HTTPS, and lasts :data:`SESSION_SECONDS`. It holds
the secret itself rather than a session id, so the store needs no session table and revoking the key
(``clickloop keys revoke``) ends every browser session (within the API-key cache's lifetime,
``settings.key_cache_seconds``). Behind a proxy that terminates TLS,
run uvicorn with ``--proxy-headers`` so the Secure flag is set.

Pages answer a missing, unknown or revoked key with a redirect to the login form (:class:`LoginRequired`)
and a client key with 403 (:class:`PageForbidden`); the admin API answers 401/403 as always.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from clickloop.errors import AuthenticationError
from clickloop.service.auth import SESSION_COOKIE, authenticate, bearer
from clickloop.service.deps import get_store
from clickloop.service.store import ApiKeyRole, ApiKeyRow, Store, secret_sha256

SESSION_SECONDS = 12 * 3600
HOME = "/dashboard"
LOGIN = "/dashboard/login"
MAX_SECRET_CHARS = 200


class LoginRequired(Exception):
    """A page was asked for without a valid admin session; answered by a redirect to the login form."""

    def __init__(self, next_path: str, message: str = "") -> None:
        super().__init__(message)
        self.next_path = next_path
        self.message = message


class PageForbidden(Exception):
    """A valid key that may not see the dashboard (a client key); answered by a 403 page."""


def login_url(next_path: str = HOME, message: str = "") -> str:
    query = {"next": safe_next(next_path)} | ({"message": message} if message else {})
    return f"{LOGIN}?{urlencode(query)}"


def safe_next(next_path: str | None) -> str:
    """Where to go after login: a dashboard path of this site, else the contexts list (no open redirect)."""
    if not next_path:
        return HOME
    parts = urlsplit(next_path)
    if parts.scheme or parts.netloc or not parts.path.startswith(HOME) or "\\" in next_path:
        return HOME
    return next_path


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (login CSRF); True otherwise.
    Browsers send ``Sec-Fetch-Site`` or ``Origin`` on every form POST; tools such as curl send neither."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.url.netloc


def page_admin(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    store: Store = Depends(get_store),
) -> ApiKeyRow:
    """The admin key of a page request (cookie or Bearer)."""
    try:
        key = authenticate(request, credentials, store)
    except AuthenticationError as exc:
        message = "" if SESSION_COOKIE not in request.cookies else "Your session ended; log in again."
        raise LoginRequired(request.url.path, message) from exc
    if key.role is not ApiKeyRole.ADMIN:
        raise PageForbidden(f"API key {key.key_id} is a {key.role} key; the dashboard needs an admin key.")
    return key


def check_login(store: Store, secret: str) -> tuple[int, str]:
    """(status, message) for a pasted secret: 200 for an admin key, 401 unknown/revoked, 403 client."""
    secret = secret.strip()
    if not secret or len(secret) > MAX_SECRET_CHARS:
        return 401, "Paste an admin key (clk_...); make one with 'clickloop keys create --role admin'."
    key = store.find_api_key(secret_sha256(secret))
    if key is None:
        return 401, "That key is unknown or revoked."
    if key.role is not ApiKeyRole.ADMIN:
        return 403, f"Key {key.key_id} is a {key.role} key; the dashboard needs an admin key."
    return 200, ""


def start_session(response: Response, request: Request, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret.strip(),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
