"""Strict parsers for the generator's two output formats.

* Iterative prompts (Figure 10) answer ``New Question: <question>``.
* The initialisation prompt (Figure 9) answers a numbered list, one question per line. Small models
  sometimes pack two or three questions on one line; those are split at each "?".
"""

from __future__ import annotations

import re

from clickloop.errors import ParseError

_NEW_QUESTION = re.compile(r"new\s+question\s*[:：]\s*(.+)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*•]|q\d+\s*[:.)])\s*", re.IGNORECASE)
# the prompt's own label repeated by the model: "New Question: Question: Is it safe?" (seen on the 1.5B)
_LABEL = re.compile(r"^(?:(?:new\s+)?question\s*\d*\s*[:：]\s*)+", re.IGNORECASE)
# a CTR echoed after the question, e.g. "... leak? CTR: 14.0%" or "... leak? (14.0%)"
_TRAILING_CTR = re.compile(r"\s*(?:[-–(|]\s*)?(?:ctr\s*[:=]?\s*)?\d+(?:\.\d+)?\s*%\)?\s*$", re.IGNORECASE)


def clean_question(text: str) -> str:
    """Strip bullets, a ``Question:`` label, quotes, markdown emphasis and an echoed CTR; collapse white
    space."""
    text = _BULLET.sub("", text.strip())
    text = text.strip().strip("*_`").strip()
    text = _LABEL.sub("", text).strip("*_`").strip().strip("\"'“”").strip()
    text = _TRAILING_CTR.sub("", text)
    text = re.sub(r"\s*ctr\s*[:=]?\s*$", "", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def split_questions(text: str) -> list[str]:
    """Split a line holding several questions at each '?' (the '?' is kept)."""
    parts = [p.strip() for p in re.split(r"(?<=\?)\s+", text) if p.strip()]
    return parts or [text]


def parse_new_question(raw: str) -> str:
    """The question after ``New Question:``; a lone line that is a question is accepted too."""
    match = _NEW_QUESTION.search(raw)
    if match:
        candidate = match.group(1).splitlines()[0]
    else:
        lines = [line for line in raw.splitlines() if line.strip()]
        questions = [line for line in lines if "?" in line]
        if len(questions) != 1:
            raise ParseError("expected one line 'New Question: <question>'", raw)
        candidate = questions[0]
    question = clean_question(split_questions(clean_question(candidate))[0])
    if not question:
        raise ParseError("'New Question:' is followed by nothing", raw)
    return question


def parse_question_list(raw: str) -> list[str]:
    """Every question of a numbered or bulleted list, in order (may be empty)."""
    questions: list[str] = []
    for line in raw.splitlines():
        line = clean_question(line)
        if not line or line.endswith(":"):
            continue
        for part in split_questions(line):
            part = clean_question(part)
            if part:
                questions.append(part)
    return questions
