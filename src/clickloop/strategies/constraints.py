"""Checks every generated item must pass, in code (the prompts ask for them too).

The paper's rules (Figures 9, 10): at most 15 words, no "best" / "where" (e-commerce), not similar to
an earlier question. Similarity here is measured, not asked: two items are near-duplicates when their
normalised texts are equal, their character-level similarity (difflib ratio) is >= ``char_threshold``,
or their word-set Jaccard overlap is >= ``word_threshold``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

from clickloop.core.items import normalize_text
from clickloop.errors import ConfigurationError

_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class ItemConstraints:
    """``max_words``: the paper's 15; ``banned_words``: whole words, case-insensitive."""

    max_words: int = 15
    min_words: int = 3
    banned_words: tuple[str, ...] = ()
    char_threshold: float = 0.9
    word_threshold: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words:
            raise ConfigurationError(f"min_words ({self.min_words}) must be in [1, max_words={self.max_words}]")
        for name in ("char_threshold", "word_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigurationError(f"{name} ({value}) must be in (0, 1]")

    def violation(self, text: str, existing: Iterable[str] = ()) -> str | None:
        """The first rule ``text`` breaks (a sentence for the re-ask prompt), or None."""
        found = self.check(text, existing)
        return None if found is None else found[1]

    def check(self, text: str, existing: Iterable[str] = ()) -> tuple[str, str] | None:
        """The first rule ``text`` breaks as (code, sentence), or None. Codes: ``too-long``,
        ``too-short``, ``not-a-question``, ``banned-word``, ``ctr-echo``, ``duplicate``."""
        n_words = len(text.split())
        if n_words > self.max_words:
            return "too-long", f"it has {n_words} words; the limit is {self.max_words}"
        if n_words < self.min_words:
            return "too-short", f"it has only {n_words} words; write a full question"
        if not text.rstrip().endswith("?"):
            return "not-a-question", "it is not a question ending with '?'"
        found = sorted(w for w in self.banned_words if re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE))
        if found:
            return "banned-word", f"it uses the forbidden word(s) {', '.join(repr(w) for w in found)}"
        if "%" in text or re.search(r"\bctr\b", text, re.IGNORECASE):
            return "ctr-echo", "it repeats a click-through rate; write only the question"
        for other in existing:
            if self.is_duplicate(text, other):
                return "duplicate", f"it is too similar to the earlier question {other!r}"
        return None

    def is_duplicate(self, a: str, b: str) -> bool:
        na, nb = normalize_text(a), normalize_text(b)
        if na == nb:
            return True
        wa, wb = _words(na), _words(nb)
        if wa | wb and len(wa & wb) / len(wa | wb) >= self.word_threshold:
            return True
        return SequenceMatcher(None, na, nb).ratio() >= self.char_threshold
