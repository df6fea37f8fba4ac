"""A scripted LLM for unit tests, examples and docs (never the README's path).

``ScriptedLLM(responder)`` answers each request with ``responder(request)``: a function returning a
string or a :class:`Completion`, or a list of strings served in order. Every request is recorded in
``requests`` so tests can check prompt content.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from clickloop.errors import BadResponseError
from clickloop.llm.base import ChatRequest, Completion

Responder = Callable[[ChatRequest], "str | Completion"]


class ScriptedLLM:
    """Deterministic fake backend; ``supports_logprobs`` is whatever the test needs."""

    def __init__(
        self,
        responder: Responder | Iterable[str],
        backend_id: str = "scripted",
        supports_logprobs: bool = False,
        max_concurrency: int = 1,
    ) -> None:
        if callable(responder):
            self._responder: Responder = responder
        else:
            queue = list(responder)

            def next_answer(_request: ChatRequest) -> str:
                if not queue:
                    raise BadResponseError("ScriptedLLM ran out of scripted answers")
                return queue.pop(0)

            self._responder = next_answer
        self.backend_id = backend_id
        self.supports_logprobs = supports_logprobs
        self.max_concurrency = max_concurrency
        self.requests: list[ChatRequest] = []
        self.started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.started = False

    def complete(self, request: ChatRequest) -> Completion:
        with self._lock:
            self.requests.append(request)
            answer = self._responder(request)
        if isinstance(answer, Completion):
            return answer
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        return Completion(
            text=answer, prompt_tokens=prompt_tokens, completion_tokens=len(answer.split()), model="scripted"
        )


_ASPECTS = (
    "price",
    "warranty",
    "durability",
    "materials",
    "cleaning",
    "safety",
    "energy use",
    "recycling",
    "brand",
    "size",
    "weight",
    "noise",
    "setup",
    "repairs",
    "accessories",
    "history",
    "origins",
    "people",
    "places",
    "events",
    "debates",
    "packaging",
    "colours",
    "storage",
    "comfort",
    "maintenance costs",
)
_FORMS = (
    "What should buyers know about the {a} of {t}?",
    "How does {a} differ between kinds of {t}?",
    "Why does {a} matter when choosing {t}?",
    "Which details of {a} affect {t} most?",
    "How can I compare {t} on {a}?",
    "Is {a} a common concern with {t}?",
)


def _digest(*parts: object) -> int:
    import hashlib

    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def canned_responder(request: ChatRequest) -> str:
    """Plausible, deterministic answers to clickloop's own prompts (tests and docs only).

    Judge prompts get ``Score: n`` with n from a hash of the prompt; initialisation prompts a numbered
    list; iterative prompts ``New Question: ...`` built from an aspect and a form picked by hash.
    """
    import re

    prompt = request.messages[0].content
    seed = _digest(prompt, request.seed, request.sample_index, len(request.messages))
    topic_match = re.search(r"'([^']+)'|Title: (.+)|Article title: (.+)|Product category: (.+)", prompt)
    topic = next((g for g in topic_match.groups() if g), "this topic").strip() if topic_match else "this topic"
    if "Score:" in prompt and "Question:" in prompt and "rubric" in prompt.lower():
        return f"Score: {1 + seed % 10}"
    if re.search(r"numbered 1 to (\d+)", prompt):
        n = int(re.search(r"numbered 1 to (\d+)", prompt).group(1))  # type: ignore[union-attr]
        picks = [(_ASPECTS[(seed + 5 * k) % len(_ASPECTS)], _FORMS[(seed // 7 + k) % len(_FORMS)]) for k in range(n)]
        return "\n".join(f"{k + 1}. {form.format(a=a, t=topic)}" for k, (a, form) in enumerate(picks))
    aspect = _ASPECTS[seed % len(_ASPECTS)]
    other = _ASPECTS[(seed // 31) % len(_ASPECTS)]
    form = _FORMS[(seed // len(_ASPECTS)) % len(_FORMS)]
    a = aspect if other == aspect else f"{aspect} and {other}"
    return f"New Question: {form.format(a=a, t=topic)}"


def canned_backend() -> ScriptedLLM:
    """The ``scripted`` backend id: :func:`canned_responder` behind the LLM protocol."""
    return ScriptedLLM(canned_responder, backend_id="scripted")
