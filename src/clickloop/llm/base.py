"""The LLM port: one request type, one response type, one protocol.

Lifecycle of a backend: constructing it only stores configuration; ``start()`` (idempotent) loads a
local model or checks a server, and is called lazily by the first ``complete``; ``close()`` frees it.
Cross-cutting concerns wrap a backend: ``Cached(Retrying(backend))``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from clickloop.errors import ValidationError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValidationError(f"message role {self.role!r} must be one of {ROLES}")


@dataclass(frozen=True)
class ChatRequest:
    """Everything that determines an LLM answer, and so the cache key.

    ``prefill``: text the assistant turn starts with (the answer continues it; used by the judge to
    read the next-token distribution right after ``"Score: "``).
    ``top_logprobs``: how many alternatives to return per generated token (0 = none).
    ``sample_index``: distinguishes repeated samples of the same request (retries, re-asks), so a
    cached bad answer is not served again for the retry.
    ``purpose``: accounting role (``generator`` or ``judge``); not part of the answer's identity.
    """

    messages: tuple[Message, ...]
    temperature: float = 0.7
    max_tokens: int = 64
    seed: int = 0
    top_p: float = 1.0
    top_logprobs: int = 0
    prefill: str = ""
    stop: tuple[str, ...] = ()
    sample_index: int = 0
    purpose: str = "generator"

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValidationError("ChatRequest.messages must not be empty")
        if self.temperature < 0:
            raise ValidationError(f"temperature ({self.temperature}) must be >= 0")
        if self.max_tokens < 1:
            raise ValidationError(f"max_tokens ({self.max_tokens}) must be >= 1")
        if not 0 <= self.top_logprobs <= 50:
            raise ValidationError(f"top_logprobs ({self.top_logprobs}) must be in [0, 50]")

    def cache_payload(self) -> dict[str, object]:
        """The request as canonical JSON-able data, without the accounting ``purpose``."""
        payload = asdict(self)
        payload.pop("purpose")
        return payload


def user(content: str, system: str | None = None) -> tuple[Message, ...]:
    """Shorthand for a one-turn conversation."""
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", content))
    return tuple(messages)


@dataclass(frozen=True)
class TokenChoice:
    """One generated token with its top alternatives (natural-log probabilities)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    """A backend's answer. ``text`` excludes the prefill. ``seconds`` is wall time of the call."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    tokens: tuple[TokenChoice, ...] = ()
    cached: bool = False
    model: str = ""

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["tokens"] = [
            {"token": t.token, "logprob": t.logprob, "top": [list(p) for p in t.top]} for t in self.tokens
        ]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        tokens = tuple(
            TokenChoice(str(t["token"]), float(t["logprob"]), tuple((str(a), float(b)) for a, b in t["top"]))
            for t in data.get("tokens", [])
        )
        return cls(
            text=str(data["text"]),
            finish_reason=str(data.get("finish_reason", "stop")),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            seconds=float(data.get("seconds", 0.0)),
            tokens=tokens,
            cached=bool(data.get("cached", False)),
            model=str(data.get("model", "")),
        )


@runtime_checkable
class LLMBackend(Protocol):
    """A chat model. ``backend_id`` names backend and model (``llamacpp:qwen2.5-coder-1.5b``)."""

    @property
    def backend_id(self) -> str: ...

    @property
    def supports_logprobs(self) -> bool: ...

    @property
    def max_concurrency(self) -> int: ...

    def start(self) -> None: ...

    def complete(self, request: ChatRequest) -> Completion: ...

    def close(self) -> None: ...


def cache_key(backend_id: str, request: ChatRequest) -> str:
    """sha256 of canonical JSON over backend id and the full request (sampling included)."""
    canonical = json.dumps(
        {"backend": backend_id, "request": request.cache_payload()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class RoleUsage:
    """Accumulated LLM use of one role: calls, tokens, wall seconds, cache hits."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, completion: Completion) -> None:
        self.calls += 1
        if completion.cached:
            self.cache_hits += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.seconds += completion.seconds


@dataclass
class Accounting:
    """Per-role usage (``generator``, ``judge``); ``snapshot`` for per-iteration deltas."""

    roles: dict[str, RoleUsage] = field(default_factory=dict)

    def add(self, purpose: str, completion: Completion) -> None:
        self.roles.setdefault(purpose, RoleUsage()).add(completion)

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {role: asdict(usage) for role, usage in sorted(self.roles.items())}

    @staticmethod
    def delta(after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for role, values in after.items():
            base = before.get(role, {})
            out[role] = {k: round(v - base.get(k, 0), 6) for k, v in values.items()}
        return out
