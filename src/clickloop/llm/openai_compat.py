"""``openai:MODEL``: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI).

Endpoint: the ``base_url`` argument, else ``OPENAI_BASE_URL``, else the SDK default
(``https://api.openai.com/v1``). Key: the environment variable named by ``api_key_env``; a server on
loopback may go without one. Neither endpoint nor key enters ``backend_id``, which is part of the
cache key, so the same model behind another URL shares cached answers.

Prefill is sent as a trailing assistant message. vLLM, llama.cpp server and Ollama continue it;
vLLM needs ``extra_body={"continue_final_message": True, "add_generation_prompt": False}`` for
that. OpenAI itself starts a fresh turn instead; for such servers the judge falls back to parsing
the text. A server that echoes the prefill at the start of its answer has the echo stripped.

The SDK's own retries are off (``max_retries=0``): wrap the backend in
:class:`clickloop.llm.retrying.Retrying`, which retries only the transient errors.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from clickloop.errors import (
    BadResponseError,
    ConfigurationError,
    ContextTooLongError,
    LLMError,
    LLMTimeoutError,
    RateLimitError,
    TransportError,
)
from clickloop.llm.base import ChatRequest, Completion, TokenChoice

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_DUMMY_KEY = "sk-no-key"
# Phrases vLLM, llama.cpp server, OpenAI and LiteLLM use when a prompt overflows the context window.
_CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "maximum context",
    "context size",
    "context_size",
    "context window",
)


class OpenAICompatible:
    """Chat completions over HTTP through the official ``openai`` SDK.

    ``timeout``: seconds per request. ``max_concurrency``: how many requests callers may have in
    flight at once (the SDK client is thread-safe). ``logprobs``: set False for servers that reject
    ``logprobs``/``top_logprobs``; the judge then parses the text. ``extra_body``: server-specific
    fields merged into every request body.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_concurrency: int = 4,
        logprobs: bool = True,
        extra_body: Mapping[str, object] | None = None,
    ) -> None:
        if not model:
            raise ConfigurationError("`model` must be a non-empty model name, e.g. openai:gpt-4o-mini")
        if timeout <= 0:
            raise ConfigurationError(f"`timeout` ({timeout}) must be > 0 seconds")
        if max_concurrency < 1:
            raise ConfigurationError(f"`max_concurrency` ({max_concurrency}) must be >= 1")
        self.model = model
        self.backend_id = f"openai:{model}"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.supports_logprobs = logprobs
        self.extra_body = dict(extra_body) if extra_body else None
        self._api_key = self._resolve_key()
        self._client: Any = None
        self._openai: Any = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The base URL requests go to."""
        return self.base_url or DEFAULT_BASE_URL

    def __repr__(self) -> str:
        return f"OpenAICompatible(model={self.model!r}, base_url={self.endpoint!r})"

    def _resolve_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if _is_loopback(self.endpoint):
            return LOCAL_DUMMY_KEY
        raise ConfigurationError(
            f"no API key for the OpenAI-compatible server at {self.endpoint}: "
            f"environment variable {self.api_key_env} is not set; set {self.api_key_env} to your key "
            "(only servers on localhost may go without one)"
        )

    def start(self) -> None:
        """Create the SDK client (idempotent); no request is sent."""
        with self._lock:
            if self._client is not None:
                return
            try:
                import openai
            except ImportError as exc:
                raise ConfigurationError(
                    f"backend {self.backend_id!r} needs the openai package; pip install -e '.[openai]'"
                ) from exc
            self._openai = openai
            self._client = openai.OpenAI(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def complete(self, request: ChatRequest) -> Completion:
        self.start()
        client, openai = self._client, self._openai
        started = time.perf_counter()
        try:
            response = client.chat.completions.create(**self._request_body(request))
        except openai.APIError as exc:
            raise self._map_error(exc) from (None if isinstance(exc, openai.APIConnectionError) else exc)
        return self._to_completion(response, request, time.perf_counter() - started)

    def _request_body(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.top_logprobs > 0 and self.supports_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        if self.extra_body:
            body["extra_body"] = self.extra_body
        return body

    def _to_completion(self, response: Any, request: ChatRequest, seconds: float) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            raise BadResponseError(
                f"the server at {self.endpoint} answered without choices for model {self.model!r}: "
                f"{str(response)[:200]!r}"
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            refusal = getattr(message, "refusal", None)
            raise BadResponseError(
                f"the server at {self.endpoint} answered without message content"
                + (f" (refusal: {refusal!r})" if refusal else "")
            )
        if request.prefill and text.startswith(request.prefill):
            text = text[len(request.prefill) :]
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            finish_reason=getattr(choice, "finish_reason", None) or "stop",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=seconds,
            tokens=_token_choices(choice) if request.top_logprobs > 0 else (),
            model=getattr(response, "model", None) or self.model,
        )

    def _map_error(self, exc: Any) -> LLMError | ConfigurationError:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(
                f"the OpenAI-compatible server at {self.endpoint} did not answer within {self.timeout} s"
            )
        if isinstance(exc, openai.APIConnectionError):
            reason = str(exc.__cause__ or "") or str(exc)
            return TransportError(
                f"cannot reach the OpenAI-compatible server at {self.endpoint}: {reason}; "
                "check that it is running and --base-url / OPENAI_BASE_URL"
            )
        if not isinstance(exc, openai.APIStatusError):
            return BadResponseError(f"unexpected answer from the server at {self.endpoint}: {exc}")
        status, detail = exc.status_code, _detail(exc)
        if status == 429:
            return RateLimitError(
                f"the server at {self.endpoint} is rate limiting (HTTP 429): {detail}",
                retry_after=_retry_after(exc.response.headers),
            )
        if status in (401, 403):
            return ConfigurationError(
                f"the server at {self.endpoint} rejected the API key (HTTP {status}: {detail}); "
                f"check the key in the environment variable {self.api_key_env}"
            )
        if status == 404:
            return ConfigurationError(
                f"model {self.model!r} not found at {self.endpoint} (HTTP 404: {detail}); check the model "
                "name (the server's /v1/models lists them) and that the base URL ends in /v1"
            )
        if status == 408:
            return LLMTimeoutError(f"the server at {self.endpoint} timed out the request (HTTP 408): {detail}")
        error_text = f"{detail} {exc.code or ''} {exc.type or ''}".lower()
        if 400 <= status < 500 and any(phrase in error_text for phrase in _CONTEXT_PHRASES):
            return ContextTooLongError(f"the prompt does not fit the context window of {self.model!r}: {detail}")
        if status >= 500:
            return TransportError(f"the server at {self.endpoint} failed (HTTP {status}): {detail}")
        return BadResponseError(f"the server at {self.endpoint} rejected the request (HTTP {status}): {detail}")


def _token_choices(choice: Any) -> tuple[TokenChoice, ...]:
    content = getattr(getattr(choice, "logprobs", None), "content", None) or ()
    return tuple(
        TokenChoice(
            token=entry.token,
            logprob=float(entry.logprob),
            top=tuple((alt.token, float(alt.logprob)) for alt in (entry.top_logprobs or ())),
        )
        for entry in content
    )


def _detail(exc: Any) -> str:
    """The server's own error message, without the SDK's ``Error code: NNN - {...}`` wrapper."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return body[:300]
    return str(exc.message)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (HTTP dates are ignored)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
