"""The relevance-judge port (the paper's QS(q_i, p_j, t) -> r_ij in [1, 10]) and its score cache."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from clickloop.core.items import normalize_text
from clickloop.core.personas import Persona
from clickloop.errors import ConfigurationError

MIN_SCORE = 1.0
MAX_SCORE = 10.0


@runtime_checkable
class RelevanceJudge(Protocol):
    """Scores one item for one persona and topic: r_ij on the paper's 1-10 scale (float allowed)."""

    judge_id: str

    def score(self, question: str, persona: Persona, topic: str) -> float: ...


def check_score(value: object, judge_id: str) -> float:
    """A judge's output must be a finite number in [1, 10]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"judge {judge_id!r} returned {value!r} ({type(value).__name__}); expected a number in [1, 10]"
        )
    if not MIN_SCORE <= float(value) <= MAX_SCORE:
        raise ConfigurationError(f"judge {judge_id!r} returned {value}; expected a number in [1, 10]")
    return float(value)


class ScoreBook:
    """Each score computed once per (item, persona, topic), as in the paper (Section 5.1), then reused.

    Thread-safe; ``known`` preloads scores from a resumed run.
    """

    def __init__(self, judge: RelevanceJudge) -> None:
        self.judge = judge
        self._scores: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(question: str, persona: Persona, topic: str) -> tuple[str, str, str]:
        return (normalize_text(question), persona.name, topic)

    def known(self, question: str, persona: Persona, topic: str, value: float) -> None:
        with self._lock:
            self._scores[self.key(question, persona, topic)] = value

    def score(self, question: str, persona: Persona, topic: str) -> float:
        key = self.key(question, persona, topic)
        with self._lock:
            if key in self._scores:
                return self._scores[key]
        value = check_score(self.judge.score(question, persona, topic), self.judge.judge_id)
        with self._lock:
            self._scores[key] = value
        return value
