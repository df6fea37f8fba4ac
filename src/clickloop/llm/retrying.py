"""Retry transient LLM errors with exponential backoff: ``Retrying(backend)``.

Only errors whose class sets ``retryable = True`` are retried (:class:`TransportError`,
:class:`RateLimitError`, :class:`LLMTimeoutError`); everything else propagates at once. The wait
before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2 ** (n - 1))`` scaled by a factor
drawn uniformly from [0.5, 1) ("equal jitter", so threads that failed together do not retry
together). A :class:`RateLimitError` with ``retry_after`` waits at least that long; when the server
asks for more than ``max_delay`` the error propagates at once, since an earlier retry would only
be refused again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from clickloop.errors import ConfigurationError, LLMError, RateLimitError
from clickloop.llm.base import ChatRequest, Completion, LLMBackend


class Retrying:
    """Wrap ``inner`` so transient failures are retried.

    ``max_attempts``: total calls per request, the first included. ``base_delay`` and
    ``max_delay``: seconds. ``sleep``: injected so tests can record waits instead of waiting.
    ``seed``: seeds the jitter, so a run's waits are reproducible.
    """

    def __init__(
        self,
        inner: LLMBackend,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        sleep: Callable[[float], object] = time.sleep,
        seed: int = 0,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"`max_attempts` ({max_attempts}) must be >= 1; 1 disables retries")
        if base_delay < 0:
            raise ConfigurationError(f"`base_delay` ({base_delay}) must be >= 0 seconds")
        if max_delay < base_delay:
            raise ConfigurationError(f"`max_delay` ({max_delay}) must be >= `base_delay` ({base_delay})")
        self.inner = inner
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = random.Random(seed)

    @property
    def backend_id(self) -> str:
        return self.inner.backend_id

    @property
    def supports_logprobs(self) -> bool:
        return self.inner.supports_logprobs

    @property
    def max_concurrency(self) -> int:
        return self.inner.max_concurrency

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def complete(self, request: ChatRequest) -> Completion:
        attempt = 1
        while True:
            try:
                return self.inner.complete(request)
            except LLMError as exc:
                if not exc.retryable or attempt >= self.max_attempts:
                    raise
                delay = self.delay(attempt, exc)
                if delay is None:
                    raise
            self._sleep(delay)
            attempt += 1

    def delay(self, attempt: int, error: LLMError) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based); None means give up now."""
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = backoff * (0.5 + 0.5 * self._rng.random())
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if retry_after is None:
            return jittered
        if retry_after > self.max_delay:
            return None
        return max(retry_after, jittered)
