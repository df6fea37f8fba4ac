"""Retrying with a scripted inner backend and a sleep that records instead of waiting."""

from __future__ import annotations

import pytest

from clickloop.errors import (
    BadResponseError,
    ConfigurationError,
    ContextTooLongError,
    LLMError,
    LLMTimeoutError,
    ParseError,
    RateLimitError,
    TransportError,
)
from clickloop.llm.base import ChatRequest, Completion, LLMBackend, user
from clickloop.llm.retrying import Retrying

REQUEST = ChatRequest(messages=user("hi"))


class Flaky:
    """Raises the scripted errors in order, then answers ``ok``."""

    backend_id = "flaky:model"
    supports_logprobs = True
    max_concurrency = 3

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def close(self) -> None:
        self.events.append("close")

    def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Completion(text="ok")


def _retrying(inner: Flaky, **kwargs: object) -> tuple[Retrying, list[float]]:
    delays: list[float] = []
    return Retrying(inner, sleep=delays.append, **kwargs), delays  # type: ignore[arg-type]


def test_delegates_the_protocol() -> None:
    inner = Flaky()
    llm, _ = _retrying(inner)
    assert isinstance(llm, LLMBackend)
    assert (llm.backend_id, llm.supports_logprobs, llm.max_concurrency) == ("flaky:model", True, 3)
    llm.start()
    llm.close()
    assert inner.events == ["start", "close"]


def test_success_needs_no_wait() -> None:
    inner = Flaky()
    llm, delays = _retrying(inner)
    assert llm.complete(REQUEST).text == "ok"
    assert (inner.calls, delays) == (1, [])


@pytest.mark.parametrize(
    "error", [TransportError("reset"), LLMTimeoutError("slow"), RateLimitError("429", retry_after=None)]
)
def test_transient_errors_are_retried(error: LLMError) -> None:
    inner = Flaky(error, error)
    llm, delays = _retrying(inner)
    assert llm.complete(REQUEST).text == "ok"
    assert inner.calls == 3
    assert len(delays) == 2


@pytest.mark.parametrize(
    "error",
    [
        BadResponseError("shape"),
        ContextTooLongError("too long"),
        ParseError("no score", raw="meh"),
        ConfigurationError("bad key"),
        RuntimeError("a bug"),
    ],
)
def test_other_errors_propagate_at_once(error: Exception) -> None:
    inner = Flaky(error)
    llm, delays = _retrying(inner)
    with pytest.raises(type(error)) as caught:
        llm.complete(REQUEST)
    assert caught.value is error
    assert (inner.calls, delays) == (1, [])


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors = [TransportError(f"down {i}") for i in range(5)]
    inner = Flaky(*errors)
    llm, delays = _retrying(inner, max_attempts=3)
    with pytest.raises(TransportError) as caught:
        llm.complete(REQUEST)
    assert caught.value is errors[2]
    assert inner.calls == 3
    assert len(delays) == 2


def test_one_attempt_disables_retries() -> None:
    inner = Flaky(TransportError("down"))
    llm, delays = _retrying(inner, max_attempts=1)
    with pytest.raises(TransportError):
        llm.complete(REQUEST)
    assert (inner.calls, delays) == (1, [])


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    inner = Flaky(*[TransportError("down") for _ in range(7)])
    llm, delays = _retrying(inner, max_attempts=8, base_delay=0.5, max_delay=4.0)
    llm.complete(REQUEST)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(delays) == len(ceilings)
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay < ceiling


def test_jitter_is_reproducible_from_the_seed() -> None:
    def run(seed: int) -> list[float]:
        llm, delays = _retrying(Flaky(*[TransportError("down")] * 3), seed=seed)
        llm.complete(REQUEST)
        return delays

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_rate_limit_waits_retry_after_when_longer_than_backoff() -> None:
    llm, delays = _retrying(Flaky(RateLimitError("429", retry_after=3.0)), base_delay=0.5)
    llm.complete(REQUEST)
    assert delays == [3.0]


def test_rate_limit_keeps_backoff_when_retry_after_is_shorter() -> None:
    llm, delays = _retrying(Flaky(RateLimitError("429", retry_after=0.0)), base_delay=0.5)
    llm.complete(REQUEST)
    assert 0.25 <= delays[0] < 0.5


def test_rate_limit_longer_than_max_delay_gives_up_at_once() -> None:
    error = RateLimitError("429", retry_after=60.0)
    inner = Flaky(error)
    llm, delays = _retrying(inner, max_delay=20.0)
    with pytest.raises(RateLimitError) as caught:
        llm.complete(REQUEST)
    assert caught.value is error
    assert (inner.calls, delays) == (1, [])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, r"`max_attempts` \(0\) must be >= 1"),
        ({"base_delay": -1.0}, r"`base_delay` \(-1.0\) must be >= 0"),
        ({"base_delay": 2.0, "max_delay": 1.0}, r"`max_delay` \(1.0\) must be >= `base_delay` \(2.0\)"),
    ],
)
def test_invalid_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Retrying(Flaky(), **kwargs)  # type: ignore[arg-type]
