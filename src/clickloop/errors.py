"""One exception tree for clickloop.

::

    ClickloopError
    ├── ConfigurationError      bad parameter, unknown id, missing optional dependency (also ValueError)
    │   └── UnknownIdError      unknown strategy / domain / persona / judge / backend id
    ├── ValidationError         an invalid value object (also ValueError)
    ├── LLMError                anything a backend reports
    │   ├── TransportError      server unreachable, connection reset      (retryable)
    │   ├── RateLimitError      HTTP 429; carries ``retry_after`` seconds   (retryable)
    │   ├── LLMTimeoutError     request took too long                      (retryable)
    │   ├── BadResponseError    a response without the expected shape
    │   ├── ContextTooLongError prompt does not fit the context window
    │   └── ParseError          output that the strict parser rejects; carries ``raw``
    ├── ModelError              embedded model missing, truncated or tampered
    ├── StorageError            a run folder, cache or store that cannot be read or written     (HTTP 503)
    │   └── ConflictError       already exists, or lost a race: a stale ``expected_iteration``  (HTTP 409)
    ├── NotFoundError           a requested run, iteration, context, item or key does not exist  (HTTP 404)
    ├── NotReadyError           the service cannot answer yet (no pool); ``retry_after`` s      (HTTP 503)
    └── AccessError             an HTTP request without the right API key
        ├── AuthenticationError missing, unknown or revoked key                               (HTTP 401)
        └── ForbiddenError      a valid key without the role or scope the request needs       (HTTP 403)

The CLI maps every ``ClickloopError`` to a one-line message and exit code 2; a traceback means a bug.
The HTTP service maps them to JSON errors in one handler (:mod:`clickloop.service.http_errors`):
``ValidationError`` and ``ConfigurationError`` become 422, ``LLMError`` 502, the rest as marked.
Only :class:`TransportError`, :class:`RateLimitError` and :class:`LLMTimeoutError` are retried by
:class:`clickloop.llm.retrying.Retrying`.
"""

from __future__ import annotations


class ClickloopError(Exception):
    """Root of every error clickloop raises on purpose. ``field``: the input at fault, when known (the
    HTTP service reports it: ``context_id``, ``item_ids``, ``Authorization``)."""

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


class ConfigurationError(ClickloopError, ValueError):
    """A parameter, flag or config file value is invalid."""


class UnknownIdError(ConfigurationError):
    """An id that is not registered; the message lists the valid ones."""

    def __init__(self, kind: str, received: str, valid: list[str] | tuple[str, ...], hint: str = "") -> None:
        self.kind = kind
        self.received = received
        self.valid = list(valid)
        message = f"unknown {kind} {received!r}; expected one of: {', '.join(self.valid)}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class ValidationError(ClickloopError, ValueError):
    """A value object was built with invalid fields."""


class LLMError(ClickloopError):
    """Base of all errors raised by LLM backends."""

    retryable: bool = False


class TransportError(LLMError):
    """The backend could not be reached."""

    retryable = True


class RateLimitError(LLMError):
    """The backend asked us to slow down."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMTimeoutError(LLMError):
    """The request exceeded its time budget."""

    retryable = True


class BadResponseError(LLMError):
    """The backend answered, but not in the expected shape."""


class ContextTooLongError(LLMError):
    """The prompt does not fit in the model's context window."""


class ParseError(LLMError):
    """LLM output rejected by a strict parser (after the bounded retries)."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}; raw output: {raw!r}")
        self.raw = raw


class ModelError(ClickloopError):
    """The embedded model is missing, truncated or does not match its pinned hash."""


class StorageError(ClickloopError):
    """A run folder, cache or store cannot be read or written."""


class ConflictError(StorageError):
    """The write conflicts with what is stored: the object already exists, or another writer got there
    first (a stale ``expected_iteration``). Nothing was changed; reload and decide again."""


class NotFoundError(ClickloopError):
    """A requested object does not exist."""


class NotReadyError(ClickloopError):
    """The object exists but cannot be served yet (a context before its first pool); retry after
    ``retry_after`` seconds. ``code``: a stable name for clients (``pool_not_ready``)."""

    def __init__(self, message: str, retry_after: float = 5.0, code: str = "not_ready") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class AccessError(ClickloopError):
    """An HTTP request without an API key that allows it."""


class AuthenticationError(AccessError):
    """No API key, or one that is unknown or revoked (HTTP 401)."""


class ForbiddenError(AccessError):
    """A valid API key whose role or context scope does not cover the request (HTTP 403)."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ValidationError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ValidationError(message)
