"""The LLM relevance judge (Section 5.1, Figure 8 rubrics), two ways of reading the score.

* ``logprobs``: the answer is prefilled with ``"Score: "`` and the next-token distribution is read;
  the score is its expected value over the digits 1-10. "10" is two tokens ("1", "0") in common
  tokenizers, so when P("1") is not negligible a second request on ``"Score: 1"`` splits P("1") between
  1 and 10 by P("0" | "1"). The distribution is the model's at temperature 1, the paper's setting.
* ``parse``: one answer sampled at temperature 1 is parsed as ``Score: n``; a malformed answer is
  re-asked (new sample index) up to ``max_attempts`` times, then :class:`ParseError` with the raw text.

``auto`` uses ``logprobs`` when the backend exposes token probabilities.
"""

from __future__ import annotations

import math
import re

from clickloop.core.personas import Persona
from clickloop.domains.loader import Domain
from clickloop.errors import ConfigurationError, ParseError
from clickloop.llm.base import ChatRequest, Completion, LLMBackend, user

JUDGE_MODES = ("auto", "logprobs", "parse")
_SCORE = re.compile(r"^\s*\**\s*(?:score\s*[:=]?\s*)?\**\s*(10|[1-9])(?:\s*/\s*10)?\b", re.IGNORECASE)
_PREFILL = "Score: "
# below this digit mass the next token is not a score at all (the model wants to write words)
_MIN_DIGIT_MASS = 0.05
# below this P("1") the 1-vs-10 split cannot move the expected score by more than ~0.09
_SPLIT_THRESHOLD = 0.01


def parse_score(text: str) -> int:
    """Strict parser for ``Score: n`` (also a bare ``n`` or ``n/10``); raises :class:`ParseError`."""
    match = _SCORE.match(text.strip())
    if not match:
        raise ParseError("expected 'Score: <1-10>'", text)
    return int(match.group(1))


def digit_distribution(completion: Completion) -> dict[int, float]:
    """Probabilities of the single-token digits 1-9 (and "10" if one token) at the first position."""
    if not completion.tokens:
        return {}
    probs: dict[int, float] = {}
    for token, logprob in completion.tokens[0].top:
        text = token.strip()
        if text in {str(d) for d in range(1, 11)}:
            value = int(text)
            probs[value] = probs.get(value, 0.0) + math.exp(logprob)
    return probs


def _zero_probability(completion: Completion) -> float:
    if not completion.tokens:
        return 0.0
    return sum(math.exp(lp) for tok, lp in completion.tokens[0].top if tok == "0")


class LLMJudge:
    """Relevance judge backed by an LLM and the domain's ``judge`` prompt template."""

    def __init__(
        self, domain: Domain, llm: LLMBackend, mode: str = "auto", max_attempts: int = 3, seed: int = 0
    ) -> None:
        if mode not in JUDGE_MODES:
            raise ConfigurationError(f"judge mode {mode!r} is unknown; expected one of {JUDGE_MODES}")
        if mode == "logprobs" and not llm.supports_logprobs:
            raise ConfigurationError(
                f"judge mode 'logprobs' needs token probabilities, which {llm.backend_id} does not expose; "
                "use --judge-mode parse"
            )
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts ({max_attempts}) must be >= 1")
        self.domain = domain
        self.llm = llm
        self.mode = "logprobs" if mode == "auto" and llm.supports_logprobs else ("parse" if mode == "auto" else mode)
        self.max_attempts = max_attempts
        self.seed = seed
        self.judge_id = f"llm:{self.mode}"

    def messages(self, question: str, persona: Persona, topic: str) -> tuple:
        template = self.domain.prompt("judge")
        return user(
            template.render(
                topic=topic, persona_name=persona.name, persona_description=persona.description, question=question
            )
        )

    def score(self, question: str, persona: Persona, topic: str) -> float:
        messages = self.messages(question, persona, topic)
        if self.mode == "logprobs":
            value = self._score_logprobs(messages)
            if value is not None:
                return value
        return float(self._score_parse(messages))

    def _next_token(self, messages: tuple, prefill: str) -> Completion:
        """The distribution of the token after ``prefill`` (temperature 1: the model's own probabilities)."""
        request = ChatRequest(
            messages, temperature=1.0, max_tokens=1, seed=self.seed, top_logprobs=20, prefill=prefill, purpose="judge"
        )
        return self.llm.complete(request)

    def _score_logprobs(self, messages: tuple) -> float | None:
        probs = digit_distribution(self._next_token(messages, _PREFILL))
        if sum(probs.values()) < _MIN_DIGIT_MASS:
            return None
        p_one = probs.get(1, 0.0)
        if p_one > _SPLIT_THRESHOLD and 10 not in probs:
            p_zero = _zero_probability(self._next_token(messages, _PREFILL + "1"))
            probs[10] = p_one * p_zero
            probs[1] = p_one * (1.0 - p_zero)
        mass = sum(probs.values())
        return sum(score * p for score, p in probs.items()) / mass

    def _score_parse(self, messages: tuple) -> int:
        raw = ""
        for attempt in range(self.max_attempts):
            answer = self.llm.complete(
                ChatRequest(
                    messages,
                    temperature=1.0,
                    max_tokens=8,
                    seed=self.seed + attempt,  # a retry must be a new sample, not the same answer again
                    sample_index=attempt,
                    purpose="judge",
                )
            )
            raw = answer.text
            try:
                return parse_score(raw)
            except ParseError:
                continue
        raise ParseError(f"the judge gave no score in {self.max_attempts} attempts", raw)
