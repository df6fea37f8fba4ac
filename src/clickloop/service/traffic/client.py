"""The HTTP side of the traffic simulator: the three calls it makes to a running service, with retries.

* ``GET /v1/contexts/{id}/suggestions``: ``503 pool_not_ready`` is waited out (``Retry-After``) by the
  caller; transport errors and other 5xx are retried here a few times with back-off.
* ``POST /v1/contexts/{id}/events`` with one click: retried with the same idempotency key, so a lost
  answer never counts a click twice; a ``duplicate`` on a retry means the first attempt was stored.
* ``GET /v1/contexts/{id}`` (admin keys only): the pool history the report plots; None for a client key.

Errors the user must fix (401, 403, 404, 422) raise the matching :mod:`clickloop.errors` class.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from clickloop.errors import (
    AuthenticationError,
    ClickloopError,
    ForbiddenError,
    NotFoundError,
    NotReadyError,
    ValidationError,
)

RETRIES = 4
BACKOFF_SECONDS = 0.25


class ServiceClient:
    """Calls to the service at ``url`` with API key ``key``. ``http``: a ready client to use instead
    (tests pass the ASGI app's ``TestClient``); it is not closed by :meth:`close`."""

    def __init__(self, url: str, key: str, *, timeout: float = 10.0, http: httpx.Client | None = None) -> None:
        if not key:
            raise AuthenticationError("an API key is needed: pass --key or set CLICKLOOP_KEY")
        self.url = url.rstrip("/")
        self._owned = http is None
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {key}"}
        self.retries = 0

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def suggestions(self, context_id: str) -> dict[str, Any]:
        """``{"impression_id", "iteration", "items": [{"item_id", "text"}]}``; NotReadyError before a pool."""
        response = self._send("GET", f"/v1/contexts/{context_id}/suggestions")
        if response.status_code == 503:
            error = _error(response)
            retry_after = float(response.headers.get("Retry-After", "1"))
            message = f"{context_id}: {error.get('message', 'not ready')}"
            raise NotReadyError(message, retry_after, code=str(error.get("type", "not_ready")))
        _check(response, context_id)
        return response.json()  # type: ignore[no-any-return]

    def click(self, context_id: str, idempotency_key: str, impression_id: str, item_id: str) -> str:
        """Post one click; its outcome (``accepted``, ``duplicate``, ``rejected:<reason>``). A retry that
        comes back ``duplicate`` was stored by an earlier attempt: it is reported as ``accepted``."""
        event = {"idempotency_key": idempotency_key, "impression_id": impression_id, "item_id": item_id}
        retries_before = self.retries
        response = self._send("POST", f"/v1/contexts/{context_id}/events", json={"events": [event]})
        _check(response, context_id)
        outcome = str(response.json()["results"][0]["outcome"])
        if outcome == "duplicate" and self.retries > retries_before:
            return "accepted"
        return outcome

    def context(self, context_id: str) -> dict[str, Any] | None:
        """The context as an admin sees it (config, pool, history); None when the key may not read it."""
        response = self._send("GET", f"/v1/contexts/{context_id}")
        if response.status_code == 403:
            return None
        _check(response, context_id)
        return response.json()  # type: ignore[no-any-return]

    def _send(self, method: str, path: str, json: object = None) -> httpx.Response:
        """The response, after up to :data:`RETRIES` retries on transport errors and on 5xx other than
        ``pool_not_ready`` (the caller waits that one out)."""
        for attempt in range(RETRIES + 1):
            try:
                response = self.http.request(method, path, json=json, headers=self.headers)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise NotReadyError(
                        f"cannot reach the service at {self.url}: {exc}; is `clickloop serve` running there?", 5.0
                    ) from exc
            else:
                retryable = response.status_code >= 500 and _error(response).get("type") != "pool_not_ready"
                if not retryable or attempt == RETRIES:
                    return response
            self.retries += 1
            time.sleep(BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


_STATUS_TO_ERROR: dict[int, type[ClickloopError]] = {
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    422: ValidationError,
}


def _check(response: httpx.Response, context_id: str) -> None:
    if response.is_success:
        return
    message = _error(response).get("message") or response.text[:200]
    error = _STATUS_TO_ERROR.get(response.status_code, NotReadyError)
    raise error(f"{context_id}: HTTP {response.status_code}: {message}")
