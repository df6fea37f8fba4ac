import math
import sys
import types

import pytest

from clickloop.core.personas import Persona
from clickloop.domains import load_domain
from clickloop.errors import ConfigurationError, ParseError, UnknownIdError
from clickloop.judges import LLMJudge, ScoreBook, make_judge, parse_score
from clickloop.judges.length import length_chars_score, length_words_score
from clickloop.llm.base import Completion, TokenChoice
from clickloop.llm.scripted import ScriptedLLM

DOMAIN = load_domain("ecommerce")
QUALITY = DOMAIN.persona("Quality")


@pytest.mark.parametrize(
    ("text", "score"), [("Score: 7", 7), ("score:10", 10), ("8", 8), ("**Score:** 9", 9), (" Score: 3/10", 3)]
)
def test_parse_score(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text", ["", "Score: eleven", "It is a 7", "Score: 0", "Score: 11"])
def test_parse_score_rejects(text):
    with pytest.raises(ParseError):
        parse_score(text)


def logprob_completion(probs):
    top = tuple((token, math.log(p)) for token, p in probs.items())
    return Completion(text=top[0][0], tokens=(TokenChoice(top[0][0], top[0][1], top),))


def test_logprob_judge_expected_value_and_prefill():
    llm = ScriptedLLM(lambda r: logprob_completion({"7": 0.5, "8": 0.3, "Great": 0.2}), supports_logprobs=True)
    judge = LLMJudge(DOMAIN, llm)
    assert judge.mode == "logprobs"
    assert judge.score("Is it durable?", QUALITY, "Cookware Sets") == pytest.approx((7 * 0.5 + 8 * 0.3) / 0.8)
    request = llm.requests[0]
    assert request.prefill == "Score: " and request.max_tokens == 1 and request.temperature == 1.0
    assert request.top_logprobs == 20 and request.purpose == "judge"
    assert "Quality" in request.messages[0].content and "Cookware Sets" in request.messages[0].content


def test_logprob_judge_splits_one_into_ten():
    def answer(request):
        if request.prefill == "Score: 1":
            return logprob_completion({"0": 0.9, "\n": 0.1})
        return logprob_completion({"1": 0.5, "9": 0.5})

    judge = LLMJudge(DOMAIN, ScriptedLLM(answer, supports_logprobs=True))
    expected = 0.5 * 9 + 0.5 * (0.9 * 10 + 0.1 * 1)
    assert judge.score("Q?", QUALITY, "Cookware Sets") == pytest.approx(expected)


def test_logprob_judge_falls_back_to_parsing_when_no_digit_mass():
    def answer(request):
        if request.top_logprobs:
            return logprob_completion({"The": 0.9, "A": 0.1})
        return "Score: 6"

    assert LLMJudge(DOMAIN, ScriptedLLM(answer, supports_logprobs=True)).score("Q?", QUALITY, "T") == 6


def test_parse_judge_retries_then_fails_with_raw():
    llm = ScriptedLLM(["no idea", "Score: 4"])
    assert LLMJudge(DOMAIN, llm, mode="parse").score("Q?", QUALITY, "T") == 4
    assert [r.sample_index for r in llm.requests] == [0, 1]
    assert [r.seed for r in llm.requests] == [0, 1]  # a retry is a new sample
    with pytest.raises(ParseError, match="no score in 3 attempts") as info:
        LLMJudge(DOMAIN, ScriptedLLM(["hmm"] * 3), mode="parse").score("Q?", QUALITY, "T")
    assert info.value.raw == "hmm"


def test_logprobs_mode_needs_a_capable_backend():
    with pytest.raises(ConfigurationError, match="--judge-mode parse"):
        LLMJudge(DOMAIN, ScriptedLLM([]), mode="logprobs")


@pytest.mark.parametrize(
    ("question", "words", "chars"),
    [
        ("Is it ok?", 1.0, 1.0),
        ("one two three four five six seven eight nine ten?", 1 + 6 * 9 / 11, 1 + (49 - 20) * 9 / 55),
        ("w " * 14 + "w?", 10.0, 1 + (30 - 20) * 9 / 55),
        ("x" * 80, 1.0, 10.0),
    ],
)
def test_length_judges_follow_appendix_e(question, words, chars):
    assert length_words_score(question) == pytest.approx(words)
    assert length_chars_score(question) == pytest.approx(chars)


def test_function_judge_and_errors(monkeypatch):
    module = types.ModuleType("my_judges")
    module.good = lambda q, persona, topic: 3 + len(persona.name) % 2
    module.bad = lambda q, persona, topic: 42
    monkeypatch.setitem(sys.modules, "my_judges", module)
    assert make_judge("my_judges:good", DOMAIN, None).score("Q?", Persona("Ab", "d"), "t") == 3
    with pytest.raises(ConfigurationError, match=r"expected a number in \[1, 10\]"):
        make_judge("my_judges:bad", DOMAIN, None).score("Q?", QUALITY, "t")
    with pytest.raises(ConfigurationError, match="no callable"):
        make_judge("my_judges:missing", DOMAIN, None)
    with pytest.raises(ConfigurationError, match="cannot import"):
        make_judge("no_such_module_xyz:f", DOMAIN, None)
    with pytest.raises(UnknownIdError, match="length-words"):
        make_judge("gpt", DOMAIN, None)


def test_score_book_scores_once_per_item_persona_topic():
    calls = []

    class Counting:
        judge_id = "counting"

        def score(self, question, persona, topic):
            calls.append((question, persona.name, topic))
            return 5.0

    book = ScoreBook(Counting())
    for _ in range(3):
        book.score("Is it durable?", QUALITY, "Cookware Sets")
        book.score("is it  durable?", QUALITY, "Cookware Sets")
    book.score("Is it durable?", DOMAIN.persona("Price"), "Cookware Sets")
    assert len(calls) == 2
