"""The paper's length judges (Appendix E): deterministic scores whose optimum is known.

QS-w(q) = max(min((|q|_w - 4) * 9/11 + 1, 10), 1), |q|_w = words: 4..15 words map onto 1..10.
QS-c(q) = max(min((|q|_c - 20) * 9/55 + 1, 10), 1), |q|_c = characters: 20..75 map onto 1..10.
They ignore persona and topic.
"""

from __future__ import annotations

from clickloop.core.personas import Persona


def length_words_score(question: str) -> float:
    """QS-w of Appendix E."""
    return max(min((len(question.split()) - 4) * 9 / 11 + 1, 10.0), 1.0)


def length_chars_score(question: str) -> float:
    """QS-c of Appendix E."""
    return max(min((len(question) - 20) * 9 / 55 + 1, 10.0), 1.0)


class LengthWordsJudge:
    judge_id = "length-words"

    def score(self, question: str, persona: Persona, topic: str) -> float:
        return length_words_score(question)


class LengthCharsJudge:
    judge_id = "length-chars"

    def score(self, question: str, persona: Persona, topic: str) -> float:
        return length_chars_score(question)
