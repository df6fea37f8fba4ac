import itertools
import re

import numpy as np
import pytest

from clickloop.core.items import ItemOrigin, ItemStats
from clickloop.core.pool import Context, ContextState, add_items, observe
from clickloop.domains import load_domain
from clickloop.errors import ConfigurationError, ParseError, UnknownIdError
from clickloop.llm.scripted import ScriptedLLM
from clickloop.strategies import STRATEGIES, ItemConstraints, ItemWriter, make_strategy

DOMAIN = load_domain("ecommerce")
CTX = Context("ecommerce:Cookware Sets", "ecommerce", "Cookware Sets")
INITIAL = [
    "What materials are cookware sets made from?",
    "How many pieces come in a cookware set?",
    "Are nonstick cookware sets safe to use?",
    "Do cookware sets work on induction hobs?",
    "How should stainless cookware sets be cleaned?",
]
FRESH = (
    f"New Question: {q}"
    for q in itertools.cycle(
        [
            "Does copper cookware tarnish over time?",
            "What thickness gives stainless steel pans even heating?",
            "How long does enamel coating on cookware last?",
            "Which handles on cookware stay cool while cooking?",
            "Can cookware sets go in the dishwasher safely?",
            "What warranty do cookware sets usually include?",
        ]
    )
)


def writer(answers):
    llm = ScriptedLLM(answers)
    rules = ItemConstraints(DOMAIN.max_words, banned_words=DOMAIN.banned_words)
    return ItemWriter(DOMAIN, llm, rules, max_attempts=3), llm


def observed_state():
    """IP_0 with CTRs 0%, 2%, 4%, 6%, 8% in pool order."""
    w, _ = writer(["\n".join(f"{k + 1}. {q}" for k, q in enumerate(INITIAL))])
    state = add_items(ContextState(CTX), w.initial_pool(CTX, 5))
    return observe(state, {i: ItemStats(100, 2 * k) for k, i in enumerate(state.pool)})


def step(name, **options):
    state = observed_state()
    w, llm = writer(lambda request: next(FRESH))
    after = make_strategy(name, **options).step(state, w, np.random.default_rng(0))
    return state, after, llm


def test_initial_pool_provenance():
    state = observed_state()
    assert [r.item.text for r in state.pool_records] == INITIAL
    assert {r.item.provenance.origin for r in state.pool_records} == {ItemOrigin.INITIAL}
    assert state.pool_records[0].item.provenance.template == "init"


def test_full_ctr_drops_worst_and_shows_full_history_ascending():
    before, after, llm = step("full-ctr")
    assert len(after.pool) == 5 and after.iteration == 1
    assert before.pool[0] not in after.pool
    assert after.history[before.pool[0]].dropped_at == 0
    new = after.history[after.pool[-1]].item
    assert new.provenance.origin is ItemOrigin.FULL_CTR and new.provenance.iteration == 1
    prompt = llm.requests[0].messages[0].content
    ctrs = [float(x) for x in re.findall(r"CTR: (\d+\.\d)%", prompt)]
    assert ctrs == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert all(q in prompt for q in INITIAL)


def test_full_ctr_prompt_includes_dropped_items_next_time():
    _, after, _ = step("full-ctr")
    after = observe(after, {i: ItemStats(100, 5) for i in after.pool})
    w, llm = writer(lambda request: next(FRESH))
    make_strategy("full-ctr").step(after, w, np.random.default_rng(0))
    assert INITIAL[0] in llm.requests[0].messages[0].content


def test_partial_ctr_hides_ctr_but_uses_it_to_drop():
    before, after, llm = step("partial-ctr")
    assert before.pool[0] not in after.pool
    assert "CTR" not in llm.requests[0].messages[0].content.split("Below are earlier questions.")[1]


def test_random_ctr_uses_random_values_in_range():
    before, after, llm = step("random-ctr")
    values = [float(x) for x in re.findall(r"CTR: (\d+\.\d)%", llm.requests[0].messages[0].content)]
    assert len(values) == 5 and all(0 <= v <= 15 for v in values)
    assert values != [0.0, 2.0, 4.0, 6.0, 8.0]
    assert len(after.pool) == 5


def test_no_drop_grows_the_pool():
    _, after, llm = step("no-drop")
    assert len(after.pool) == 6
    assert "CTR" not in llm.requests[0].messages[0].content.split("Below are earlier questions.")[1]


def test_explore_exploit_bookkeeping_and_prompts():
    before, after, llm = step("explore-exploit")
    assert len(after.pool) == 5
    assert before.pool[0] not in after.pool and before.pool[1] not in after.pool
    new = [after.history[i].item for i in after.pool if i not in before.pool]
    assert [i.provenance.origin for i in new] == [ItemOrigin.EXPLORE, ItemOrigin.EXPLOIT]
    exploit = new[1].provenance
    assert dict(exploit.notes)["best_item"] == before.pool[4] == exploit.parents[0]
    explore_prompt, exploit_prompt = (r.messages[0].content for r in llm.requests)
    assert "CTR" not in explore_prompt.split("Below are earlier questions.")[1]
    assert "CTR: 8.0%" in exploit_prompt and "highest CTR" in exploit_prompt


def test_explore_exploit_counts_are_fields():
    before, after, llm = step("explore-exploit", n_explore=0, n_exploit=1, n_drop=1)
    assert len(after.pool) == 5 and len(llm.requests) == 1


def test_writer_reasks_with_the_reason_then_accepts():
    state = observed_state()
    answers = [
        "New Question: Which cookware set is the best?",
        "blah",
        "New Question: Does copper cookware tarnish over time?",
    ]
    w, llm = writer(answers)
    after = make_strategy("full-ctr").step(state, w, np.random.default_rng(0))
    assert after.history[after.pool[-1]].item.provenance.attempts == 3
    assert "forbidden word" in llm.requests[1].messages[-1].content
    assert llm.requests[1].messages[1].content == answers[0]
    assert len({r.seed for r in llm.requests}) == 3
    assert [r.temperature for r in llm.requests] == pytest.approx([0.8, 0.9, 1.0])


def test_writer_records_the_rules_rejected_answers_broke():
    state = observed_state()
    w, _ = writer(["New Question: Which cookware set is the best?", "blah", "New Question: " + FRESH_TEXT])
    after = make_strategy("full-ctr").step(state, w, np.random.default_rng(0))
    notes = dict(after.history[after.pool[-1]].item.provenance.notes)
    assert notes["rejected"] == "banned-word,form" and "shortened_from" not in notes


LONG = "How do the handles of the most expensive cookware sets stay cool on a gas hob for hours?"
FRESH_TEXT = "Does copper cookware tarnish over time?"


def test_shorten_sends_only_the_long_question_and_keeps_the_short_version():
    w, llm = writer([f"New Question: {LONG}", "New Question: How do cookware set handles stay cool on gas hobs?"])
    listed = "\n".join(f"Question: {q}" for q in INITIAL)
    item = w.write_one(CTX, "iterate_plain", ItemOrigin.EXPLORE, 1, INITIAL, shorten=True, questions=listed)
    assert item.text == "How do cookware set handles stay cool on gas hobs?" and item.provenance.attempts == 2
    assert dict(item.provenance.notes) == {"rejected": "too-long", "shortened_from": LONG}
    first, second = llm.requests
    assert len(second.messages) == 1 and LONG in second.messages[0].content
    assert "at most 15 words" in second.messages[0].content
    assert all(q in first.messages[0].content and q not in second.messages[0].content for q in INITIAL)
    assert second.seed != first.seed


def test_shorten_that_still_fails_falls_back_to_the_conversation_re_ask():
    w, llm = writer([f"New Question: {LONG}", f"New Question: {LONG}", f"New Question: {FRESH_TEXT}"])
    item = w.write_one(CTX, "iterate_plain", ItemOrigin.EXPLORE, 1, INITIAL, shorten=True, questions="Question: x")
    assert item.text == FRESH_TEXT and item.provenance.attempts == 3
    assert dict(item.provenance.notes)["rejected"] == "too-long,shorten:too-long"
    third = llm.requests[2]
    assert third.messages[1].content == f"New Question: {LONG}" and "18 words" in third.messages[-1].content


def test_shorten_is_off_by_default_and_counts_against_max_attempts():
    w, llm = writer([f"New Question: {LONG}", f"New Question: {FRESH_TEXT}"])
    item = w.write_one(CTX, "iterate_plain", ItemOrigin.EXPLORE, 1, INITIAL, questions="Question: x")
    assert item.text == FRESH_TEXT and len(llm.requests[1].messages) == 3  # the conversation re-ask
    w, llm = writer([f"New Question: {LONG}"] * 3)  # max_attempts 3: answer, shorten, re-ask
    with pytest.raises(ParseError, match="after 3 attempts"):
        w.write_one(CTX, "iterate_plain", ItemOrigin.EXPLORE, 1, INITIAL, shorten=True, questions="Question: x")
    assert len(llm.requests) == 3


def test_writer_gives_up_with_raw_text_and_state_is_untouched():
    state = observed_state()
    w, _ = writer(["New Question: " + INITIAL[0]] * 3)
    with pytest.raises(ParseError, match="too similar|no valid") as info:
        make_strategy("full-ctr").step(state, w, np.random.default_rng(0))
    assert INITIAL[0] in info.value.raw
    assert len(state.pool) == 5 and len(state.history) == 5


def test_initial_pool_reasks_until_enough_valid():
    w, llm = writer(["1. What is the best pan?\n2. " + INITIAL[0], "\n".join(INITIAL)])
    items = w.initial_pool(CTX, 5)
    assert [i.text for i in items] == INITIAL[:1] + INITIAL[1:]
    assert len(llm.requests) == 2 and llm.requests[0].seed != llm.requests[1].seed


def test_initial_pool_fails_after_bound():
    w, _ = writer(["1. Pans?"] * 3)
    with pytest.raises(ParseError, match="only 0 of 5"):
        w.initial_pool(CTX, 5)


def test_registry_rejects_unknown_names_and_options():
    assert set(STRATEGIES) == {
        "no-drop",
        "random-ctr",
        "partial-ctr",
        "full-ctr",
        "explore-exploit",
        "guided-ee",
        "fixed-pool",
    }
    with pytest.raises(UnknownIdError, match="explore-exploit"):
        make_strategy("greedy")
    with pytest.raises(ConfigurationError, match="no option"):
        make_strategy("full-ctr", n_explore=2)
    with pytest.raises(ConfigurationError, match="n_drop"):
        make_strategy("full-ctr", n_drop=0)
    with pytest.raises(ConfigurationError, match="low"):
        make_strategy("random-ctr", low=0.5, high=0.1)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("no-drop", {"n_new": 2}),
        ("full-ctr", {"n_drop": 2}),
        ("partial-ctr", {}),
        ("random-ctr", {}),
        ("explore-exploit", {}),
        ("explore-exploit", {"n_explore": 0, "n_exploit": 1, "n_drop": 2}),
        ("explore-exploit", {"n_explore": 2, "n_exploit": 1, "n_drop": 0}),
    ],
)
def test_items_per_step_matches_what_step_does(name, options):
    strategy = make_strategy(name, **options)
    n_new, n_drop = strategy.items_per_step()
    before, after, llm = step(name, **options)
    assert len(llm.requests) == n_new
    assert len(set(before.pool) - set(after.pool)) == n_drop
    assert len(after.pool) - len(before.pool) == n_new - n_drop


@pytest.mark.parametrize("name", ["full-ctr", "explore-exploit"])
def test_show_impressions_puts_counts_on_their_own_lines(name):
    _, _, llm = step(name, show_impressions=True)
    prompt = next(r.messages[0].content for r in llm.requests if "CTR:" in r.messages[0].content)
    assert prompt.count("Shown: 100 times") == 5
    assert "CTR: 0.0%\nShown: 100 times\nQuestion:" in prompt  # the lowest first, its count on its own line
    _, _, plain = step(name)
    assert "Shown:" not in "".join(r.messages[0].content for r in plain.requests)
