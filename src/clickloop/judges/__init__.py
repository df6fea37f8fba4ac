"""Relevance judges, chosen by id: ``llm``, ``length-words``, ``length-chars`` or ``module:function``.

A ``module:function`` judge is called as ``fn(question, persona, topic)`` (``persona`` has ``.name`` and
``.description``) and must return a number in [1, 10].
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from clickloop.core.personas import Persona
from clickloop.domains.loader import Domain
from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.judges.base import RelevanceJudge, ScoreBook, check_score
from clickloop.judges.length import LengthCharsJudge, LengthWordsJudge
from clickloop.judges.llm_judge import JUDGE_MODES, LLMJudge, parse_score
from clickloop.llm.base import LLMBackend

BUILTIN_JUDGES = ("llm", "length-words", "length-chars")

__all__ = [
    "BUILTIN_JUDGES",
    "JUDGE_MODES",
    "FunctionJudge",
    "LLMJudge",
    "LengthCharsJudge",
    "LengthWordsJudge",
    "RelevanceJudge",
    "ScoreBook",
    "make_judge",
    "parse_score",
]


class FunctionJudge:
    """Wraps a user function ``fn(question, persona, topic) -> number in [1, 10]``."""

    def __init__(self, fn: Callable[[str, Persona, str], float], judge_id: str) -> None:
        self.fn = fn
        self.judge_id = judge_id

    def score(self, question: str, persona: Persona, topic: str) -> float:
        return check_score(self.fn(question, persona, topic), self.judge_id)


def load_function(spec: str) -> Callable[[str, Persona, str], float]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"judge {spec!r}: cannot import module {module_name!r} ({exc}); make it importable (PYTHONPATH)"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigurationError(f"judge {spec!r}: {module_name} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def make_judge(spec: str, domain: Domain, llm: LLMBackend | None, mode: str = "auto", seed: int = 0) -> RelevanceJudge:
    """Build a judge from its id; ``llm`` is needed only for ``llm``."""
    if spec == "llm":
        if llm is None:
            raise ConfigurationError("judge 'llm' needs an LLM backend")
        return LLMJudge(domain, llm, mode=mode, seed=seed)
    if spec == "length-words":
        return LengthWordsJudge()
    if spec == "length-chars":
        return LengthCharsJudge()
    if ":" in spec:
        return FunctionJudge(load_function(spec), spec)
    raise UnknownIdError("judge", spec, [*BUILTIN_JUDGES, "module:function"])
