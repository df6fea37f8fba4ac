"""Every error the API returns, in one shape: ``{"error": {"type", "message", "field"}}``.

==================================  ======  ==========================
exception                           status  ``type``
==================================  ======  ==========================
malformed JSON body                 400     ``malformed_json``
``AuthenticationError``             401     ``unauthenticated``
``ForbiddenError``                  403     ``forbidden``
``NotFoundError``, unknown route    404     ``not_found``
``ConflictError``                   409     ``conflict``
body over the size limit            413     ``payload_too_large``
request validation (pydantic)       422     ``invalid_request`` (``field``: dotted path)
``ValidationError``                 422     ``invalid_value``
``ConfigurationError``              422     ``invalid_configuration``
``LLMError``                        502     ``llm_error``
``NotReadyError``                   503     its ``code`` (``pool_not_ready``), ``Retry-After``
``StorageError``                    503     ``storage_unavailable``
==================================  ======  ==========================
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickloop.errors import (
    AccessError,
    AuthenticationError,
    ClickloopError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    LLMError,
    NotFoundError,
    NotReadyError,
    StorageError,
    ValidationError,
)

# most specific first: ConflictError is a StorageError, UnknownIdError a ConfigurationError
STATUS_AND_TYPE: tuple[tuple[type[ClickloopError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (ForbiddenError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (ValidationError, 422, "invalid_value"),
    (ConfigurationError, 422, "invalid_configuration"),
    (LLMError, 502, "llm_error"),
    (NotReadyError, 503, "not_ready"),
    (StorageError, 503, "storage_unavailable"),
)
HTTP_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int, kind: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


async def clickloop_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ClickloopError):  # registered for ClickloopError only
        raise exc
    status, kind = next(((s, k) for cls, s, k in STATUS_AND_TYPE if isinstance(exc, cls)), (500, "internal_error"))
    headers = {}
    field = exc.field
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, AccessError):
        field = field or "Authorization"
    if isinstance(exc, NotReadyError):
        kind = exc.code
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return error_response(status, kind, str(exc), field, headers)


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts = loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc
    return ".".join(map(str, parts)) or str(loc[0] if loc else "body")


async def request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", f"the body is not valid JSON: {errors[0].get('msg')}", "body")
    problems = "; ".join(f"{_dotted(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
    return error_response(422, "invalid_request", problems, _dotted(tuple(errors[0]["loc"])))


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        raise exc
    kind = HTTP_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClickloopError, clickloop_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(HTTPException, http_error)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413 before the app reads them.

    A declared ``Content-Length`` is checked at once; a chunked body is read up to the limit and then
    replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body exceeds {self.max_bytes} bytes; send smaller batches"
        response = error_response(413, "payload_too_large", message, "body")
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
