import pytest

from clickloop.errors import ConfigurationError, ParseError
from clickloop.strategies.constraints import ItemConstraints
from clickloop.strategies.parsing import parse_new_question, parse_question_list

RULES = ItemConstraints(max_words=15, banned_words=("best", "where"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("New Question: Are copper pans durable?", "Are copper pans durable?"),
        ("new question:  **Are copper pans durable?**", "Are copper pans durable?"),
        ("Sure!\nNew Question: Are copper pans durable?\nCTR: 12.0%", "Are copper pans durable?"),
        ("New Question: Are copper pans durable? CTR: 14.0%", "Are copper pans durable?"),
        ("New Question: Are copper pans durable? (13.7%)", "Are copper pans durable?"),
        ("New Question: Are copper pans durable? Do they rust?", "Are copper pans durable?"),
        ("Are copper pans durable?", "Are copper pans durable?"),
        ('New Question: "Are copper pans durable?"', "Are copper pans durable?"),
        # the label repeated (48 committed 1.5B items were stored as "Question: ...")
        ("New Question: Question: Are copper pans durable?", "Are copper pans durable?"),
        ("New Question: **Question:** Are copper pans durable?", "Are copper pans durable?"),
        ("Question: Are copper pans durable?", "Are copper pans durable?"),
    ],
)
def test_parse_new_question(raw, expected):
    assert parse_new_question(raw) == expected


@pytest.mark.parametrize("raw", ["", "I cannot help with that.", "A? B?\nC?\nD?", "New Question:"])
def test_parse_new_question_rejects_with_raw_text(raw):
    with pytest.raises(ParseError) as info:
        parse_new_question(raw)
    assert info.value.raw == raw


def test_parse_question_list_numbered_bulleted_and_packed():
    raw = "Here are questions:\n1. What is it made of?\n2) Is it safe? Does it rust?\n- How heavy is it?\n\n"
    assert parse_question_list(raw) == ["What is it made of?", "Is it safe?", "Does it rust?", "How heavy is it?"]


def test_parse_question_list_drops_a_repeated_label():
    raw = "1. Question: What is it made of?\n2. Question 2: Is it safe?\nQuestion:"
    assert parse_question_list(raw) == ["What is it made of?", "Is it safe?"]


@pytest.mark.parametrize(
    ("text", "existing", "reason"),
    [
        ("What are the " + "very " * 12 + "good pans?", [], "words; the limit is 15"),
        ("Pans?", [], "only 1 words"),
        ("Which pans are the best buy?", [], "forbidden word"),
        ("Where are pans made?", [], "forbidden word"),
        ("Are copper pans durable", [], "not a question"),
        ("Is 14.0% a good CTR?", [], "click-through rate"),
        ("Are copper pans durable?", ["are copper  pans durable?"], "too similar"),
        ("Are the copper pans durable?", ["Are copper pans durable?"], "too similar"),
    ],
)
def test_violations(text, existing, reason):
    assert reason in RULES.violation(text, existing)


@pytest.mark.parametrize(
    "text", ["Are copper pans durable?", "How do I clean a cast iron skillet without soap?", "Is bestow a word?"]
)
def test_valid_questions_pass(text):
    assert RULES.violation(text, ["What sizes do cookware sets come in?"]) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_words": 0}, "min_words"),
        ({"max_words": 2, "min_words": 3}, "min_words"),
        ({"char_threshold": 0}, "char_threshold"),
    ],
)
def test_invalid_constraints(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        ItemConstraints(**kwargs)
